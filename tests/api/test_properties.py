"""Property tests for the parsers of outside input: they never raise on garbage, and folding keeps words."""

from __future__ import annotations

from email.header import decode_header, make_header

from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.bounces.reports import parse_report
from api_service.email.from_mime import from_mime, rewrite_headers
from api_service.mail.headers import unstructured
from api_service.mail.parse import header_fields, split_head

HEADERISH = st.lists(
    st.tuples(
        st.sampled_from(["From", "To", "Cc", "Subject", "X-PM-Tag", "X-PM-Metadata-a", "Content-Type", "Message-ID"]), st.text(max_size=60)
    ),
    max_size=8,
).map(lambda items: "".join(f"{k}: {' '.join(v.splitlines())}\r\n" for k, v in items).encode("utf-8", "replace") + b"\r\nbody\r\n")


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=400), HEADERISH))
def test_smtp_parsing_never_raises(raw: bytes) -> None:
    parsed = from_mime(raw, mail_from="", rcpt_tos=["a@example.net"])
    assert isinstance(parsed.problems, list)
    head, _ = split_head(rewrite_headers(raw, message_id="<a@b.c>"))
    names = [field.split(b":", 1)[0].strip().lower() for field in header_fields(head)]
    assert not any(name.startswith(b"x-pm-") for name in names)


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=400), HEADERISH))
def test_report_parsing_never_raises(raw: bytes) -> None:
    assert parse_report(raw).kind in ("dsn", "complaint", "unknown")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=300))
def test_header_folding_keeps_the_words(value: str) -> None:
    encoded = unstructured("Subject", value).split(":", 1)[1]
    assert all(len(line) <= 998 for line in encoded.split("\r\n"))
    assert str(make_header(decode_header(encoded))).split() == value.split()
