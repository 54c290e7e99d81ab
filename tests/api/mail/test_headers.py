"""Header fields within RFC 5322's line limits, RFC 2047's 75-character encoded words and RFC 2231
continuations, read back unchanged by the standard library (`email.parser`, `policy.default`)."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.mail.addresses import Mailbox
from api_service.mail.headers import encoded_words, parameter, unstructured
from api_service.mail.mime import AttachmentPart, MimeInput, build_mime

ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# Any text a user may send: every category but NUL-like controls and lone surrogates.
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00\r\n"), max_size=300)
LONG_WORDS = st.builds(lambda word, n: " ".join([word] * n), st.text(alphabet="abcxyz-", min_size=1, max_size=1500), st.integers(1, 3))
NAME = st.one_of(TEXT.map(lambda s: " ".join(s.split())), st.just("Joe, Jr."), st.just("x" * 1500), st.just("Ä" * 400))
FILENAME = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=300).map(str.strip).filter(bool),
    st.just("a" * 1200 + ".pdf"),
    st.just("réserve " * 60 + ".pdf"),
)


def build(*, subject: str, name: str, header: str, filename: str) -> bytes:
    return build_mime(
        MimeInput(
            message_id="<id@example.com>",
            date=datetime(2026, 1, 2, tzinfo=UTC),
            sender=Mailbox(name=name, email="sender@example.com"),
            to=[Mailbox(name=name, email="to@example.net"), Mailbox(name="", email="b@example.net")],
            cc=[],
            reply_to=[],
            subject=subject,
            text_body="body",
            html_body=None,
            headers=[("X-Custom", header)],
            attachments=[AttachmentPart(name=filename, content=b"data", content_type="application/pdf")],
        )
    )


def display_name(raw: bytes, field: str) -> str:
    """The first display name of a field, decoded as RFC 2047 says (white space between adjacent
    encoded words dropped); Python's address parser keeps that white space, so it is no judge."""
    value = re.sub(r"\r\n[ \t]", " ", str(email.message_from_bytes(raw, policy=policy.compat32)[field]))
    first = value.split(">,", 1)[0]
    if "<" not in first:
        return ""
    words = first.rpartition(" <")[0].strip()
    if words.startswith('"'):
        return words[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return str(make_header(decode_header(words)))


def check_limits(raw: bytes) -> None:
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, line[:100]
    for word in ENCODED_WORD.findall(raw):
        assert len(word) <= 75, word


class TestRoundTrip:
    @settings(max_examples=40, deadline=None)
    @given(subject=st.one_of(TEXT, LONG_WORDS), name=NAME, header=st.one_of(TEXT, LONG_WORDS), filename=FILENAME)
    def test_every_field_is_within_limits_and_reads_back(self, subject: str, name: str, header: str, filename: str) -> None:
        raw = build(subject=subject, name=name, header=header, filename=filename)
        check_limits(raw)
        parsed = email.message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        # White space at either end of a field is not kept: readers drop it.
        assert str(parsed["Subject"]) == subject.strip(" \t")
        assert str(parsed["X-Custom"]) == header.strip(" \t")
        assert parsed["From"].addresses[0].addr_spec == "sender@example.com"
        assert [a.addr_spec for a in parsed["To"].addresses] == ["to@example.net", "b@example.net"]
        assert display_name(raw, "From") == name
        assert display_name(raw, "To") == name
        [attachment] = list(parsed.iter_attachments())
        assert attachment.get_filename() == filename
        # The same through the parser SMTP intake uses.
        names = [part.get_filename() for part in email.message_from_bytes(raw, policy=policy.compat32).walk() if part.get_filename()]
        assert names == [filename]


class TestEncodedWords:
    @given(TEXT)
    def test_words_are_short_and_whole(self, text: str) -> None:
        words = encoded_words(text)
        assert all(len(w) <= 75 for w in words)
        assert "".join(str(make_header(decode_header(w))) for w in words) == text

    def test_text_that_looks_like_an_encoded_word_is_encoded(self) -> None:
        field = unstructured("Subject", "=?utf-8?q?hello?= world")
        assert "hello?= world" not in field
        parsed = email.message_from_bytes(f"{field}\r\n\r\n".encode(), policy=policy.default)
        assert str(parsed["Subject"]) == "=?utf-8?q?hello?= world"

    def test_plain_subject_stays_readable(self) -> None:
        assert unstructured("Subject", "Your invoice") == "Subject: Your invoice"


class TestParameters:
    def test_long_file_name_uses_rfc2231_continuations(self) -> None:
        params = parameter("filename", "ü" * 200 + ".pdf")
        assert params[0].startswith("filename*0*=utf-8''")
        assert params[1].startswith("filename*1*=")
        assert all(len(p) <= 78 for p in params)

    def test_short_ascii_file_name_is_quoted(self) -> None:
        assert parameter("filename", 'a "b".pdf') == ['filename="a \\"b\\".pdf"']
