"""`messages.service.headers_of`: a stored message's header fields as people read them."""

from __future__ import annotations

from api_service.messages.service import headers_of


class TestHeadersOf:
    def test_fields_in_order_with_encoded_words_decoded(self) -> None:
        raw = b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.com>\r\nSubject: =?utf-8?b?w6l0w6k=?=\r\nX-Tag: plain\r\n\r\nbody"
        assert headers_of(raw) == [("From", "Renée <renee@example.com>"), ("Subject", "été"), ("X-Tag", "plain")]

    def test_a_word_in_an_unknown_charset_is_shown_as_stored(self) -> None:
        raw = b"Subject: =?x-no-such-charset?q?abc?=\r\n\r\n"
        assert headers_of(raw) == [("Subject", "=?x-no-such-charset?q?abc?=")]

    def test_the_body_is_not_read(self) -> None:
        assert headers_of(b"Subject: hi\r\n\r\nFrom: not a header\r\n") == [("Subject", "hi")]
