"""`scrub_address` against messages built by Postgate's own MIME builder and read back with the
standard library's parser."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses

from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.mail.addresses import Mailbox
from api_service.mail.mime import MimeInput, build_mime
from api_service.messages.scrub import mentions, scrub_address, scrub_text

PLACEHOLDER = "removed@data-removal.invalid"
LOCAL = st.from_regex(r"[a-z0-9]([a-z0-9_+-]{0,8}[a-z0-9])?", fullmatch=True)
DOMAIN = st.from_regex(r"[a-z]{1,8}\.(com|net|org)", fullmatch=True)
ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
NAME = st.one_of(st.just(""), st.text(st.characters(codec="utf-8", exclude_categories=["C"]), max_size=20))
BODY_WORDS = st.lists(st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=["C"]), max_size=15), st.just("é")), max_size=5)


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def addresses(parsed: EmailMessage, header: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([str(v) for v in parsed.get_all(header, [])])]


def text_body(parsed: EmailMessage) -> str:
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def build(to: list[Mailbox], cc: list[Mailbox], text: str) -> bytes:
    return build_mime(
        MimeInput(
            message_id="<m@example.com>",
            date=datetime(2026, 1, 2, tzinfo=UTC),
            sender=Mailbox("Sender", "sender@example.com"),
            to=to,
            cc=cc,
            reply_to=[],
            subject="Hello",
            text_body=text,
            html_body=f"<p>{text}</p>",
        )
    )


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, str, list[str], list[str], list[str]]:
    emails = draw(st.lists(ADDRESS, min_size=1, max_size=6, unique_by=str.lower))
    target = draw(st.sampled_from(emails))
    split = draw(st.integers(0, len(emails)))
    to = [Mailbox(draw(NAME), e) for e in emails[:split]]
    cc = [Mailbox(draw(NAME), e) for e in emails[split:]]
    words = draw(BODY_WORDS)
    text = " ".join([*words, "contact", target.upper() if draw(st.booleans()) else target, "or", *emails, *words])
    return build(to, cc, text), target, [m.email for m in to], [m.email for m in cc], emails


class TestScrubAddress:
    @settings(max_examples=150)
    @given(messages())
    def test_the_address_is_gone_and_everyone_else_is_kept(self, case: tuple[bytes, str, list[str], list[str], list[str]]) -> None:
        raw, target, to, cc, emails = case
        scrubbed = scrub_address(raw, target, PLACEHOLDER)
        assert not mentions(scrubbed, target)
        parsed = parse(scrubbed)
        expected = {e.lower(): (PLACEHOLDER if e.lower() == target.lower() else e.lower()) for e in emails}
        assert addresses(parsed, "To") == [expected[e.lower()] for e in to]
        assert addresses(parsed, "Cc") == [expected[e.lower()] for e in cc]
        body = text_body(parsed)
        assert not mentions(body.encode(), target)
        for other in emails:
            if other.lower() != target.lower():
                assert other.lower() in body.lower()
        assert PLACEHOLDER in body

    @given(ADDRESS, NAME)
    def test_the_display_name_goes_with_the_address(self, target: str, name: str) -> None:
        raw = build([Mailbox(name or "Ada Lovelace", target), Mailbox("Kept Name", "kept@example.org")], [], "hi")
        parsed = parse(scrub_address(raw, target, PLACEHOLDER))
        assert str(parsed["To"]) == f"{PLACEHOLDER}, Kept Name <kept@example.org>"

    def test_a_longer_address_containing_it_is_left_alone(self) -> None:
        raw = build([Mailbox("", "bob@example.com"), Mailbox("", "jimbob@example.com"), Mailbox("", "bob@example.com.au")], [], "x")
        scrubbed = scrub_address(raw, "Bob@Example.com", PLACEHOLDER)
        assert addresses(parse(scrubbed), "To") == [PLACEHOLDER, "jimbob@example.com", "bob@example.com.au"]

    def test_base64_text_parts_are_scrubbed_and_attachments_left_alone(self) -> None:
        attachment = base64.b64encode(b"bob@example.com in a file").decode()
        text = base64.b64encode("Grüße an bob@example.com".encode()).decode()
        raw = (
            "From: a@example.org\r\nTo: Bob <bob@example.com>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            f'--b\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n{text}\r\n'
            f"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--b--\r\n"
        ).encode()
        parsed = parse(scrub_address(raw, "bob@example.com", PLACEHOLDER))
        assert str(parsed["To"]) == PLACEHOLDER
        assert text_body(parsed) == f"Grüße an {PLACEHOLDER}"
        [_, file] = list(parsed.iter_parts())
        assert file.get_content() == b"bob@example.com in a file"

    def test_a_message_the_parser_cannot_read_still_loses_the_address(self) -> None:
        raw = b"To: bob@example.com\nSubject: x\n\nbob@example.com\xff\xfe"
        assert not mentions(scrub_address(raw, "bob@example.com", PLACEHOLDER), "bob@example.com")

    def test_scrub_text(self) -> None:
        assert scrub_text("550 <Bob@Example.com>: unknown, not jimbob@example.com", "bob@example.com", PLACEHOLDER) == (
            f"550 <{PLACEHOLDER}>: unknown, not jimbob@example.com"
        )
