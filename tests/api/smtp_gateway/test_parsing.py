from __future__ import annotations

from api_service.smtp_gateway.parsing import parse_smtp_message, rewrite_headers

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


class TestParseSmtpMessage:
    def test_reads_control_headers(self) -> None:
        parsed = parse_smtp_message(RAW)
        assert parsed.sender is not None
        assert parsed.sender.email == "sender@example.com"
        assert [m.email for m in parsed.to] == ["a@example.net", "b@example.net"]
        assert parsed.tag == "welcome"
        assert parsed.metadata == {"customer": "42", "customer2": "43"}
        assert parsed.message_stream == "broadcast"
        assert parsed.track_links == "HtmlOnly"
        assert parsed.keep_id is True
        assert parsed.problems == []

    def test_missing_from_is_a_problem_not_an_exception(self) -> None:
        parsed = parse_smtp_message(b"To: a@example.net\r\n\r\nbody")
        assert parsed.sender is None
        assert parsed.problems == ["The message has no 'From' header."]


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
