"""The MX listener receiving inbound mail over real SMTP, against the real API and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.db import async_database_url
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway

pytestmark = pytest.mark.slow
ACCOUNT = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}


def inbound_server(api: str, **fields: Any) -> tuple[dict[str, str], str]:
    """A server (its token headers) and its inbound address."""
    created = httpx.post(f"{api}/servers", json={"Name": "Inbound", **fields}, headers=ACCOUNT)
    assert created.status_code == 200, created.text
    body = created.json()
    return {"X-Postmark-Server-Token": body["ApiTokens"][0]}, body["InboundAddress"]


def mail(*, to: str, subject: str = "Hello", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello there.")
    return message.as_bytes()


def padded(*, to: str, subject: str, size: int) -> bytes:
    """A plain message of about `size` bytes."""
    line = b"x" * 78 + b"\r\n"
    return f"From: ann@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n".encode() + line * (size // len(line))


def inbound(api: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = httpx.get(f"{api}/messages/inbound?count=50&offset=0", headers=headers).json()["InboundMessages"]
    return messages


def details(api: str, headers: dict[str, str], message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{api}/messages/inbound/{message_id}/details", headers=headers).json()
    return body


def mx(gateway: Gateway) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10)
    client.ehlo("mx.sender.example")
    return client


def plus(address: str, mailbox_hash: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{mailbox_hash}@{domain}"


def query(database_url: str, sql: str) -> list[Any]:
    """Rows of one query on the live API's database."""

    async def run() -> list[Any]:
        engine = create_async_engine(async_database_url(database_url))
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(sql))).all())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def mx_from(gateway: Gateway, source_ip: str) -> smtplib.SMTP:
    """A connection to the MX listener from another loopback address (127.0.0.0/8 is all loopback)."""
    client = smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10, source_address=(source_ip, 0))
    client.ehlo("mx.sender.example")
    return client


class TestRecipients:
    def test_mail_for_a_domain_postgate_does_not_own_is_refused_at_rcpt(self, gateway: Gateway, clean_live_api: str) -> None:
        with mx(gateway) as client:
            client.mail("spammer@example.org")
            code, text = client.rcpt("victim@example.net")
        assert code == 550
        assert text.startswith(b"5.7.1 Relaying denied")

    def test_an_unknown_inbound_hash_is_550_511(self, gateway: Gateway, clean_live_api: str) -> None:
        _, address = inbound_server(clean_live_api)
        with mx(gateway) as client:
            client.mail("ann@example.com")
            code, text = client.rcpt("f" * 32 + "@" + address.partition("@")[2])
        assert (code, text[:5]) == (550, b"5.1.1")

    def test_a_servers_inbound_domain_takes_any_address(self, gateway: Gateway, clean_live_api: str) -> None:
        headers, _ = inbound_server(clean_live_api, InboundDomain="replies.app.example")
        with mx(gateway) as client:
            assert client.sendmail("ann@example.com", ["ticket-7@replies.app.example"], mail(to="ticket-7@replies.app.example")) == {}
        [message] = inbound(clean_live_api, headers)
        assert message["OriginalRecipient"] == "ticket-7@replies.app.example"

    def test_return_path_and_inbound_recipients_need_separate_transactions(self, gateway: Gateway, clean_live_api: str) -> None:
        _, address = inbound_server(clean_live_api)
        with mx(gateway) as client:
            client.mail("")
            assert client.rcpt("pgb+00@bounces.postgate.test")[0] == 250
            code, text = client.rcpt(address)
        assert (code, text[:5]) == (452, b"4.5.3")

    def test_recipients_are_limited(self, gateway: Gateway, clean_live_api: str) -> None:
        _, address = inbound_server(clean_live_api)
        with mx(gateway) as client:
            client.mail("ann@example.com")
            codes = [client.rcpt(plus(address, str(n)))[0] for n in range(gateway.settings.smtp_max_recipients + 1)]
        assert codes == [250] * gateway.settings.smtp_max_recipients + [452]

    def test_the_api_being_down_is_a_temporary_failure(self, gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api)
        with mx(gateway) as client:
            client.mail("ann@example.com")
            gateway.relay.cut()
            try:
                rcpt = client.rcpt(address)
            finally:
                gateway.relay.restore()
            assert (rcpt[0], rcpt[1][:5]) == (451, b"4.3.0")
            assert client.rcpt(address)[0] == 250
            gateway.relay.cut()
            try:
                data = client.data(mail(to=address))
            finally:
                gateway.relay.restore()
            assert (data[0], data[1][:5]) == (451, b"4.3.0")
        assert inbound(clean_live_api, headers) == []


class TestData:
    def test_stored_before_250_with_a_trace_header_and_the_mailbox_hash(self, gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api)
        with mx(gateway) as client:
            client.mail("ann@example.com")
            client.rcpt(plus(address, "ticket42"))
            code, text = client.data(mail(to=address, subject="Grüße"))
        assert code == 250
        [message] = inbound(clean_live_api, headers)
        assert text.decode().endswith(message["MessageID"])
        got = details(clean_live_api, headers, message["MessageID"])
        assert (got["MailboxHash"], got["Subject"], got["Status"]) == ("ticket42", "Grüße", "Processed")
        received = got["Headers"][0]
        assert received["Name"] == "Received"
        trace = " ".join(received["Value"].split())
        assert trace.startswith(f"from mx.sender.example ([127.0.0.1]) by {gateway.settings.smtp_hostname} (Postgate) with ESMTP id ")
        assert f"for <{plus(address, 'ticket42')}>;" in trace

    def test_a_senders_own_spam_score_is_dropped(self, gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api, InboundSpamThreshold=5)
        forged = mail(to=address, X_Spam_Score="-10", X_Spam_Status="No, score=-10")
        with mx(gateway) as client:
            assert client.sendmail("ann@example.com", [address], forged) == {}
        [message] = inbound(clean_live_api, headers)
        names = [h["Name"].lower() for h in details(clean_live_api, headers, message["MessageID"])["Headers"]]
        assert "x-spam-score" not in names
        assert "x-spam-status" not in names

    def test_a_trusted_filters_spam_score_counts(self, trusting_gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api, InboundSpamThreshold=5)
        with mx(trusting_gateway) as client:
            client.sendmail("ann@example.com", [address], mail(to=address, X_Spam_Score="7.3"))
            client.sendmail("ann@example.com", [address], mail(to=address, subject="Ham", X_Spam_Score="0.4"))
        spam, ham = sorted(inbound(clean_live_api, headers), key=lambda m: m["Subject"] == "Ham")
        assert (spam["Status"], ham["Status"]) == ("Blocked", "Processed")
        assert "7.3" in details(clean_live_api, headers, spam["MessageID"])["BlockedReason"]

    def test_smuggled_end_of_data_is_refused(self, gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api)
        # smtplib would mend the bare LFs, so the commands go over a plain socket.
        with socket.create_connection(("127.0.0.1", gateway.settings.smtp_inbound_port), timeout=10) as sock:
            replies = sock.makefile("rb")

            def say(line: bytes) -> bytes:
                sock.sendall(line)
                while (reply := replies.readline())[3:4] == b"-":
                    pass
                return reply

            replies.readline()
            for command in (b"EHLO mx.sender.example\r\n", b"MAIL FROM:<ann@example.com>\r\n", f"RCPT TO:<{address}>\r\n".encode()):
                assert say(command).startswith(b"250")
            assert say(b"DATA\r\n").startswith(b"354")
            reply = say(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<a@b.c>\r\n.\r\n")
        assert reply.startswith(b"550 5.5.2")
        assert inbound(clean_live_api, headers) == []

    def test_starttls_is_offered(self, gateway: Gateway) -> None:
        with mx(gateway) as client:
            assert client.has_extn("starttls")
            assert not client.has_extn("auth")


class TestStorage:
    def test_one_message_to_50_plus_addresses_is_stored_and_posted_once(
        self, big_gateway: Gateway, clean_live_api: str, database_url: str
    ) -> None:
        headers, address = inbound_server(clean_live_api, InboundHookUrl="http://127.0.0.1:9/inbound")
        recipients = [plus(address, str(n)) for n in range(50)]
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "Ann <ann@example.com>", ", ".join(recipients), "Big"
        message.set_content("See the attachment.")
        message.add_attachment(os.urandom(750_000), maintype="application", subtype="octet-stream", filename="blob.bin")
        raw = message.as_bytes(policy=SMTP)  # CRLF: smtplib sends bytes as they are
        assert len(raw) > 1_000_000
        with mx(big_gateway) as client:
            client.mail("ann@example.com")
            assert [client.rcpt(r)[0] for r in recipients] == [250] * 50
            code, reply = client.data(raw)
        assert code == 250, reply
        [(rows, raw_bytes)] = query(database_url, "SELECT count(*), sum(octet_length(raw_mime)) FROM inbound_messages")
        assert rows == 1
        assert len(raw) < raw_bytes < len(raw) + 1_000  # the message and its Received: header, once
        [(posts, payload_bytes)] = query(database_url, "SELECT count(*), sum(octet_length(payload::text)) FROM webhook_deliveries")
        assert posts == 1
        assert payload_bytes < 1.5 * len(raw)
        # What Postmark posts: the first recipient's OriginalRecipient and MailboxHash, every
        # recipient in ToFull with its own.
        [(payload,)] = query(database_url, "SELECT payload FROM webhook_deliveries")
        message_id = reply.decode().rsplit(" ", 1)[1]
        assert (payload["MessageID"], payload["OriginalRecipient"], payload["MailboxHash"]) == (message_id, recipients[0], "0")
        assert [(a["Email"], a["MailboxHash"]) for a in payload["ToFull"]] == [(r, str(n)) for n, r in enumerate(recipients)]
        assert payload["BccFull"] == []
        [attachment] = payload["Attachments"]
        assert attachment["ContentLength"] == 750_000
        search = {"count": "50", "offset": "0", "recipient": recipients[37]}
        found = httpx.get(f"{clean_live_api}/messages/inbound", params=search, headers=headers).json()
        assert [m["MessageID"] for m in found["InboundMessages"]] == [message_id]


class TestClientLimits:
    """Each test connects from its own loopback address: the limits count per client IP."""

    def test_connections_over_the_limit_get_421_4_7_0_and_other_ips_are_served(self, limited_gateway: Gateway) -> None:
        for _ in range(3):
            with mx_from(limited_gateway, "127.0.0.10") as client:
                assert client.noop()[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            mx_from(limited_gateway, "127.0.0.10")
        assert refused.value.smtp_code == 421
        error = refused.value.smtp_error
        assert isinstance(error, bytes)
        assert error.startswith(b"4.7.0 Too many connections from your address, try again in ")
        with mx_from(limited_gateway, "127.0.0.11") as client:
            assert client.noop()[0] == 250

    def test_messages_over_the_limit_get_451_4_7_1_at_mail(self, limited_gateway: Gateway, clean_live_api: str) -> None:
        headers, address = inbound_server(clean_live_api)
        with mx_from(limited_gateway, "127.0.0.12") as client:
            for subject in ("One", "Two"):
                assert client.sendmail("ann@example.com", [address], mail(to=address, subject=subject)) == {}
            code, reply = client.mail("ann@example.com")
        assert (code, reply[:5]) == (451, b"4.7.1")
        with mx_from(limited_gateway, "127.0.0.13") as client:
            assert client.sendmail("ann@example.com", [address], mail(to=address, subject="Three")) == {}
        assert sorted(m["Subject"] for m in inbound(clean_live_api, headers)) == ["One", "Three", "Two"]

    def test_bytes_over_the_limit_get_451_4_7_1_after_data_and_nothing_is_stored(
        self, limited_gateway: Gateway, clean_live_api: str
    ) -> None:
        headers, address = inbound_server(clean_live_api)
        with mx_from(limited_gateway, "127.0.0.14") as client:
            assert client.sendmail("ann@example.com", [address], padded(to=address, subject="First", size=150_000)) == {}
            client.mail("ann@example.com")
            client.rcpt(address)
            code, reply = client.data(padded(to=address, subject="Second", size=160_000))
            assert (code, reply[:5]) == (451, b"4.7.1")
            client.rset()
            assert client.mail("ann@example.com")[0] == 451
        assert [m["Subject"] for m in inbound(clean_live_api, headers)] == ["First"]
