"""The one parsing policy: what it reads agrees with the standard library's modern parser."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from api_service.mail.addresses import Mailbox
from api_service.mail.mime import AttachmentPart, MimeInput, build_mime
from api_service.mail.parse import decoded, generate, header_fields, parse, parse_head, split_head, text_bodies

BODY = st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), max_size=300)


def _stdlib_bodies(raw: bytes) -> tuple[str, str]:
    parsed = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return (text.get_content() if text is not None else "", html.get_content() if html is not None else "")


def _built(text: str | None, html: str | None, attach: bool) -> bytes:
    sender = Mailbox(name="", email="a@example.com")
    return build_mime(
        MimeInput(
            message_id="<1@example.com>",
            date=datetime(2026, 1, 1, tzinfo=UTC),
            sender=sender,
            to=[sender],
            cc=[],
            reply_to=[],
            subject="s",
            text_body=text,
            html_body=html,
            attachments=[AttachmentPart(name="a.txt", content=b"attached text", content_type="text/plain")] if attach else [],
        )
    )


class TestTextBodies:
    @given(text=st.none() | BODY, html=st.none() | BODY, attach=st.booleans())
    def test_agrees_with_the_default_policy_on_built_messages(self, text: str | None, html: str | None, attach: bool) -> None:
        if text is None and html is None:
            text = ""
        raw = _built(text, html, attach)
        assert text_bodies(raw) == _stdlib_bodies(raw)

    def test_an_attached_text_file_is_no_body(self) -> None:
        raw = _built(None, "<p>hi</p>", attach=True)
        assert text_bodies(raw) == ("", "<p>hi</p>")

    def test_unknown_charset_is_read_as_utf8(self) -> None:
        raw = b"Content-Type: text/plain; charset=x-nonsense\r\n\r\nh\xc3\xa9\r\n"
        assert text_bodies(raw) == ("h\u00e9\r\n", "")


class TestHeaders:
    def test_split_head_keeps_the_blank_line_with_the_body(self) -> None:
        assert split_head(b"A: 1\r\nB: 2\r\n\r\nbody") == (b"A: 1\r\nB: 2\r\n", b"\r\nbody")

    def test_header_fields_keep_continuations(self) -> None:
        assert header_fields(b"A: 1\r\n 2\r\nB: 3\r\n") == [b"A: 1\r\n 2\r\n", b"B: 3\r\n"]

    def test_parse_head_reads_no_body(self) -> None:
        head = parse_head(b"Subject: hi\r\n\r\nbody")
        assert head["Subject"] == "hi"

    def test_generate_leaves_long_header_lines_unfolded(self) -> None:
        raw = b"Subject: " + b"x" * 200 + b"\r\nFrom: a@b.c\r\n\r\nFrom the start\r\n"
        assert generate(parse(raw)) == raw

    def test_decoded_reads_encoded_words_and_leaves_malformed_ones(self) -> None:
        assert decoded("=?utf-8?q?caf=C3=A9?=") == "caf\u00e9"
        assert decoded("=?x-unknown?q?a?=") == "=?x-unknown?q?a?="
