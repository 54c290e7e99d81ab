"""DKIM signing covers the one-click unsubscribe headers (RFC 8058 §4) and over-signs From, Subject, To
and Date, so that a copy of one of them added on the way breaks the signature (verified with dkimpy)."""

from __future__ import annotations

import re

import dkim as dkimpy
import pytest

from api_service.domains.dkim import generate_key, sign

KEY = generate_key()

LIST_MAIL = (
    b"From: News <news@example.org>\r\n"
    b"To: ann@example.net\r\n"
    b"Subject: This week\r\n"
    b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"List-Unsubscribe: <https://postgate.test/u/abc>, <mailto:unsub@example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"List-Id: News <news.example.org>\r\n"
    b"Feedback-ID: 1:news:postgate\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name.decode().rstrip(".") == f"{KEY.selector}._domainkey.example.org"
    return f"v=DKIM1; k=rsa; p={KEY.public_b64}".encode()


def signed(raw: bytes) -> bytes:
    return sign(raw, domain="example.org", selector=KEY.selector, private_pem=KEY.private_pem)


def signed_header_names(message: bytes) -> list[str]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    match = re.search(r"\bh=([^;]+)", head)
    assert match is not None
    return [name.strip().lower() for name in re.sub(r"\s+", "", match.group(1)).split(":")]


class TestSignedHeaders:
    def test_the_signature_verifies_and_covers_the_list_headers(self) -> None:
        message = signed(LIST_MAIL)
        assert dkimpy.verify(message, dnsfunc=dns)
        names = signed_header_names(message)
        for name in ("list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"):
            assert name in names
        for name in ("from", "subject", "to", "date"):
            assert names.count(name) == 2  # once for the copy there is, once for a copy added later

    def test_a_message_without_list_headers_does_not_list_them(self) -> None:
        raw = b"".join(line + b"\r\n" for line in LIST_MAIL.split(b"\r\n") if not line.lower().startswith((b"list-", b"feedback-id")))
        message = signed(raw)
        assert dkimpy.verify(message, dnsfunc=dns)
        assert not {"list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"} & set(signed_header_names(message))

    @pytest.mark.parametrize(
        "added",
        [
            b"Subject: You won a prize\r\n",
            b"From: Bank <security@bank.example>\r\n",
            b"To: someone@else.example\r\n",
            b"Date: Tue, 08 Dec 2026 10:00:00 +0000\r\n",
        ],
    )
    def test_a_second_copy_added_above_or_below_breaks_the_signature(self, added: bytes) -> None:
        message = signed(LIST_MAIL)
        head, body = message.split(b"\r\n\r\n", 1)
        assert not dkimpy.verify(head + b"\r\n" + added + b"\r\n" + body, dnsfunc=dns)
        signature, rest = head.split(b"\r\nFrom:", 1)
        assert not dkimpy.verify(signature + b"\r\n" + added + b"From:" + rest + b"\r\n\r\n" + body, dnsfunc=dns)

    def test_a_changed_unsubscribe_link_breaks_the_signature(self) -> None:
        message = signed(LIST_MAIL).replace(b"https://postgate.test/u/abc", b"https://evil.example/u/abc")
        assert not dkimpy.verify(message, dnsfunc=dns)
