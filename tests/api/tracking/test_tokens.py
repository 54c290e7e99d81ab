"""Tracking tokens: they round-trip, and nothing else opens."""

from __future__ import annotations

import base64
import uuid

from hypothesis import given
from hypothesis import strategies as st

from api_service.mail.useragent import parse_user_agent
from api_service.tracking import tokens
from api_service.tracking.rewrite import MAX_TRACKED_URL, trackable
from shared.constants import ClickLocation, Platform

NO_NUL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=200)
PAYLOADS = st.one_of(
    st.builds(tokens.Payload, st.sampled_from([tokens.Kind.OPEN, tokens.Kind.UNSUBSCRIBE]), st.uuids(version=4), NO_NUL),
    st.builds(tokens.Payload, st.just(tokens.Kind.CLICK), st.uuids(version=4), NO_NUL, st.sampled_from(list(ClickLocation)), NO_NUL),
)


class TestTokens:
    @given(PAYLOADS, st.text(min_size=1, max_size=50))
    def test_round_trip_and_url_safe(self, payload: tokens.Payload, secret: str) -> None:
        token = tokens.seal(secret, payload)
        assert all(c.isalnum() or c in "-_" for c in token)
        assert tokens.message_id_of(token) == payload.message_id
        assert tokens.unseal(secret, token) == payload
        assert tokens.seal(secret, payload) == token  # deterministic: the same copy on every attempt

    @given(PAYLOADS, st.data())
    def test_any_changed_byte_or_other_secret_fails(self, payload: tokens.Payload, data: st.DataObject) -> None:
        token = tokens.seal("secret", payload)
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
        forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        assert tokens.unseal("secret", forged) is None
        assert tokens.unseal("other secret", token) is None

    @given(PAYLOADS, st.integers(1, 2**62), st.sampled_from(["outbound", "broadcast", "digest-2"]))
    def test_version_2_opens_by_its_server_without_the_message(self, payload: tokens.Payload, server_id: int, stream: str) -> None:
        v2 = tokens.Payload(payload.kind, payload.message_id, payload.recipient, payload.location, payload.url, server_id, stream)
        token = tokens.seal("secret", v2)
        assert tokens.server_id_of(token) == server_id
        assert tokens.unseal_v2("secret", token) == v2
        assert tokens.unseal_v2("other secret", token) is None
        assert tokens.unseal("secret", token) is None  # not a version 1 token
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[8] ^= 1  # another server's id: the associated data no longer matches
        assert tokens.unseal_v2("secret", base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()) is None

    def test_a_long_non_ascii_url_would_make_a_token_the_routes_refuse(self) -> None:
        url = "https://example.com/" + "漢" * 1520  # under MAX_TRACKED_URL characters, three bytes each
        payload = tokens.Payload(tokens.Kind.CLICK, uuid.uuid4(), "r@example.net", ClickLocation.HTML, url, 1, "outbound")
        assert len(tokens.seal("secret", payload)) > tokens.MAX_TOKEN_CHARS  # so copies.plan_for leaves it untracked

    @given(st.text(max_size=300))
    def test_garbage_never_raises(self, text: str) -> None:
        assert tokens.unseal("secret", text) is None

    @given(server_id=st.integers(min_value=0, max_value=2**64 - 1))
    def test_a_server_id_a_database_cannot_hold_is_no_server(self, server_id: int) -> None:
        raw = tokens.V2 + server_id.to_bytes(8, "big") + uuid.uuid4().bytes + bytes(40)
        token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assert tokens.server_id_of(token) == (server_id if 0 < server_id < 2**63 else None)

    def test_recipient_and_link_are_not_readable_in_the_token(self) -> None:
        payload = tokens.Payload(tokens.Kind.CLICK, uuid.uuid4(), "someone@example.net", ClickLocation.HTML, "https://example.com/secret")
        raw = base64.urlsafe_b64decode(tokens.seal("secret", payload) + "==")
        assert b"someone" not in raw
        assert b"example.com" not in raw

    def test_the_longest_tracked_link_makes_a_token_that_opens(self) -> None:
        url = "https://example.com/" + "a" * (MAX_TRACKED_URL - len("https://example.com/"))
        assert trackable(url)
        assert not trackable(url + "a")
        payload = tokens.Payload(tokens.Kind.CLICK, uuid.uuid4(), "r" * 310 + "@example.net", ClickLocation.TEXT, url)
        assert tokens.unseal("secret", tokens.seal("secret", payload)) == payload


class TestUserAgents:
    def test_desktop_browser(self) -> None:
        found = parse_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0")
        assert (found.client_family, found.client_company, found.os_family, found.platform) == (
            "Firefox",
            "Mozilla",
            "Windows",
            Platform.DESKTOP,
        )

    def test_gmail_image_proxy_is_webmail(self) -> None:
        found = parse_user_agent("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)")
        assert (found.client_name, found.client_company, found.os_family, found.platform) == (
            "Gmail",
            "Google",
            "Unknown",
            Platform.WEBMAIL,
        )

    def test_outlook_and_unknown(self) -> None:
        outlook = parse_user_agent("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)")
        assert (outlook.client_family, outlook.client_company) == ("Outlook", "Microsoft")
        nothing = parse_user_agent("")
        assert (nothing.client_name, nothing.platform) == ("Unknown", Platform.UNKNOWN)
