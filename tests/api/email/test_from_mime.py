from __future__ import annotations

from api_service.email.from_mime import from_mime, rewrite_headers
from api_service.email.message import OutgoingMessage

RAW = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: a@example.net, B <b@example.net>\r\n"
    b"Subject: Hi\r\n"
    b"Message-ID: <orig@app.example>\r\n"
    b"X-PM-Tag: welcome\r\n"
    b"X-PM-Metadata-customer: 42\r\n"
    b"X-PM-Metadata-customer: 43\r\n"
    b"X-PM-Message-Stream: Broadcast\r\n"
    b"X-PM-TrackLinks: htmlonly\r\n"
    b"X-PM-KeepID: true\r\n"
    b"X-Pm-Other: folded\r\n  continuation\r\n"
    b"Bcc: hidden@example.net\r\n"
    b"\r\n"
    b"X-PM-Tag: this is body text\r\n"
)


def read(raw: bytes, rcpt_tos: list[str] | None = None) -> OutgoingMessage:
    return from_mime(raw, mail_from="sender@example.com", rcpt_tos=rcpt_tos or ["a@example.net"])


class TestFromMime:
    def test_reads_control_headers(self) -> None:
        parsed = read(RAW)
        assert parsed.sender is not None
        assert parsed.sender.email == "sender@example.com"
        assert [m.email for m in parsed.to] == ["a@example.net", "b@example.net"]
        assert parsed.tag == "welcome"
        assert parsed.metadata == {"customer": "42", "customer2": "43"}
        assert parsed.message_stream == "broadcast"
        assert parsed.track_links == "HtmlOnly"
        assert parsed.message_id == "<orig@app.example>"  # X-PM-KeepID: true keeps it
        assert parsed.problems == []

    def test_replaces_message_id_without_keep_id(self) -> None:
        assert read(RAW.replace(b"X-PM-KeepID: true\r\n", b"")).message_id is None

    def test_missing_from_is_a_problem_not_an_exception(self) -> None:
        parsed = read(b"To: a@example.net\r\n\r\nbody")
        assert parsed.sender is None
        assert [p.message for p in parsed.problems] == ["The message has no 'From' header."]

    def test_two_from_headers_are_a_problem(self) -> None:
        parsed = read(b"From: sender@example.com\r\nFrom: boss@elsewhere.example\r\nTo: a@example.net\r\n\r\nbody")
        assert [p.message for p in parsed.problems] == ["The message has more than one 'From' header."]

    def test_group_syntax_in_to_is_valid(self) -> None:
        parsed = read(b"From: sender@example.com\r\nTo: undisclosed-recipients:;\r\n\r\nbody", ["hidden@example.net"])
        assert parsed.problems == []
        assert parsed.to == []
        assert parsed.recipients() == ["hidden@example.net"]

    def test_envelope_decides_the_recipients(self) -> None:
        parsed = read(RAW, ["A@example.net", "a@example.net", "extra@example.net", "not an address"])
        assert parsed.recipients() == ["A@example.net", "extra@example.net"]
        assert parsed.invalid_recipients == ["not an address"]


class TestRewriteHeaders:
    def test_strips_control_headers_with_continuations_but_not_the_body(self) -> None:
        out = rewrite_headers(RAW, message_id="<new@example.com>")
        head, _, body = out.partition(b"\r\n\r\n")
        assert b"x-pm-" not in head.lower()
        assert b"continuation" not in head
        assert b"hidden@example.net" not in head
        assert head.startswith(b"Message-ID: <new@example.com>\r\n")
        assert b"<orig@app.example>" not in head
        assert body == b"X-PM-Tag: this is body text\r\n"

    def test_keeps_message_id_when_none_given(self) -> None:
        assert b"Message-ID: <orig@app.example>" in rewrite_headers(RAW, message_id=None)
