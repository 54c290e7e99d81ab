"""The pure parts of sending: address parsing and MIME building."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.mail.addresses import AddressError, Mailbox, _parse_simple, parse_address_list, parse_mailbox
from api_service.mail.mime import AttachmentPart, MimeInput, build_mime

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}.example.com", LOCAL, st.sampled_from(["a", "mail", "x-y"]))
NAME = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs")), max_size=30)


class TestParseAddressList:
    def test_display_names_with_commas_and_quotes(self) -> None:
        assert parse_address_list('"Joe, Jr." <joe@example.com>, ann@example.net') == [
            Mailbox(name="Joe, Jr.", email="joe@example.com"),
            Mailbox(name="", email="ann@example.net"),
        ]

    @pytest.mark.parametrize("value", ["not an address", "a@", "<@example.com>", "a@b.com\r\nBcc: x@y.com", "a@b.com\x00"])
    def test_rejects_malformed(self, value: str) -> None:
        with pytest.raises(AddressError):
            parse_address_list(value)

    def test_empty_is_no_recipients(self) -> None:
        assert parse_address_list(" , ") == []

    @given(st.lists(ADDRESS, min_size=1, max_size=5))
    def test_round_trips_plain_lists(self, addresses: list[str]) -> None:
        assert [m.email for m in parse_address_list(", ".join(addresses))] == addresses

    def test_periods_in_unquoted_names_are_accepted(self) -> None:
        assert parse_address_list("John Q. Public <john@example.com>") == [Mailbox(name="John Q. Public", email="john@example.com")]

    @given(
        st.lists(
            st.tuples(st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N")) | st.just(" "), max_size=15), ADDRESS),
            min_size=1,
            max_size=4,
        )
    )
    def test_fast_path_agrees_with_the_full_parser(self, items: list[tuple[str, str]]) -> None:
        value = ", ".join(f"{name} <{addr}>" if name.strip() else addr for name, addr in items)
        fast = _parse_simple(value)
        assert fast is not None
        header = HeaderRegistry()("To", value)
        full = [Mailbox(name=" ".join(a.display_name.split()), email=a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]
        assert list(fast) == full

    def test_single_mailbox_required_for_from(self) -> None:
        with pytest.raises(AddressError):
            parse_mailbox("a@example.com, b@example.com")


class TestBuildMime:
    @given(name=NAME, subject=st.text(max_size=200).map(lambda s: " ".join(s.splitlines())), body=st.text(max_size=500))
    def test_any_name_subject_and_body_survive_a_round_trip(self, name: str, subject: str, body: str) -> None:
        raw = build_mime(
            MimeInput(
                message_id="<id@example.com>",
                date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                sender=Mailbox(name=name, email="sender@example.com"),
                to=[Mailbox(name="", email="to@example.net")],
                cc=[],
                reply_to=[],
                subject=subject,
                text_body=body,
                html_body=None,
            )
        )
        parsed = email.message_from_bytes(raw, _class=email.message.EmailMessage, policy=policy.default)
        assert parsed["From"].addresses[0].addr_spec == "sender@example.com"
        # Header folding may change white space, never the words. RFC 2047 says white space
        # between adjacent encoded words is dropped; Python's address parser keeps it, so the
        # raw header is decoded with decode_header, as mail clients do.
        raw_from = email.message_from_bytes(raw, policy=policy.compat32)["From"]
        decoded = str(make_header(decode_header(raw_from)))
        assert decoded.rpartition("<")[0].replace('"', "").split() == name.split()
        assert str(parsed["Subject"]).split() == subject.split()
        text = parsed.get_body(preferencelist=("plain",))
        assert text is not None
        assert text.get_content().replace("\r\n", "\n").rstrip("\n") == body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))

    def test_inline_image_is_related_to_html(self) -> None:
        raw = build_mime(
            MimeInput(
                message_id="<id@example.com>",
                date=datetime(2026, 1, 2, tzinfo=UTC),
                sender=Mailbox(name="", email="s@example.com"),
                to=[Mailbox(name="", email="t@example.com")],
                cc=[],
                reply_to=[],
                subject="s",
                text_body=None,
                html_body='<img src="cid:logo">',
                attachments=[AttachmentPart(name="logo.png", content=b"png", content_type="image/png", content_id="logo")],
            )
        )
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert parsed.get_content_type() == "multipart/related"
        image = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
        assert image["Content-ID"] == "<logo>"

    @given(
        text=st.text(max_size=300),
        html=st.text(max_size=300),
        # Names are stripped by validation before they get here.
        filename=st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=40)
        .map(str.strip)
        .filter(bool),
        content=st.binary(max_size=300),
        long_line=st.booleans(),
    )
    def test_parts_and_attachments_survive_a_round_trip(self, text: str, html: str, filename: str, content: bytes, long_line: bool) -> None:
        if long_line:
            text += "x" * 2000
        raw = build_mime(
            MimeInput(
                message_id="<id@example.com>",
                date=datetime(2026, 1, 2, tzinfo=UTC),
                sender=Mailbox(name="", email="s@example.com"),
                to=[Mailbox(name="", email="t@example.com")],
                cc=[],
                reply_to=[],
                subject="s",
                text_body=text,
                html_body=html,
                attachments=[AttachmentPart(name=filename, content=content, content_type="application/pdf")],
            )
        )
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        parsed = email.message_from_bytes(raw, _class=email.message.EmailMessage, policy=policy.default)
        plain, rich = parsed.get_body(preferencelist=("plain",)), parsed.get_body(preferencelist=("html",))
        assert plain is not None
        assert rich is not None

        def same(a: str, b: str) -> bool:
            return a.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") == b.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")

        assert same(plain.get_content(), text)
        assert same(rich.get_content(), html)
        [attachment] = list(parsed.iter_attachments())
        assert attachment.get_filename() == filename
        assert attachment.get_content() == content
