"""The SMTP gateway driven by real clients over real sockets, against the real API and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hmac
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.db import async_database_url
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway, SmtpServerHandle

pytestmark = pytest.mark.slow


def mail(*, sender: str = "Sender <sender@example.com>", to: str = "to@example.net", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Hello over SMTP"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello from a legacy application.")
    return message


def outbound(api: str, server: SmtpServerHandle) -> list[dict[str, Any]]:
    response = httpx.get(f"{api}/messages/outbound?count=50&offset=0", headers=server.headers)
    messages: list[dict[str, Any]] = response.json()["Messages"]
    return messages


def connect(gateway: Gateway) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gateway.port, timeout=10)
    client.ehlo("client.example")
    return client


class TestAuthentication:
    def test_ehlo_advertises_mechanisms_size_and_starttls(self, gateway: Gateway) -> None:
        with connect(gateway) as client:
            assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5"}
            assert client.esmtp_features["size"] == str(gateway.settings.smtp_max_message_bytes)
            assert "starttls" in client.esmtp_features

    def test_smtp_is_off_by_default(self, gateway: Gateway, clean_live_api: str) -> None:
        created = httpx.post(f"{clean_live_api}/servers", json={"Name": "Off"}, headers={"X-Postmark-Account-Token": "test-account-token"})
        token = created.json()["ApiTokens"][0]
        with connect(gateway) as client, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login(token, token)
        assert caught.value.smtp_code == 535
        error = caught.value.smtp_error
        assert b"SmtpApiActivated" in (error if isinstance(error, bytes) else error.encode())

    @pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
    def test_each_mechanism_accepts_the_token(self, gateway: Gateway, smtp_server: SmtpServerHandle, mechanism: str) -> None:
        with connect(gateway) as client:
            client.user, client.password = smtp_server.token, smtp_server.token
            methods: dict[str, Any] = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login, "CRAM-MD5": client.auth_cram_md5}
            code, _ = client.auth(mechanism, methods[mechanism])
            assert code == 235

    def test_wrong_token_gets_535_578(self, gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        with connect(gateway) as client, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("not-a-token", "not-a-token")
        assert caught.value.smtp_code == 535
        error = caught.value.smtp_error
        assert (error if isinstance(error, bytes) else error.encode()).startswith(b"5.7.8")

    def test_user_and_password_must_both_be_the_token(self, gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        with connect(gateway) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(smtp_server.token, "something else")

    @pytest.mark.parametrize("user", ["tökén".encode(), b"\xff\xfe", "токен".encode()])
    def test_non_ascii_user_name_is_a_plain_535(self, gateway: Gateway, user: bytes) -> None:
        with connect(gateway) as client:
            code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + user + b"\0" + user).decode())
            assert code == 535
            assert b"Error" not in text
            assert client.noop()[0] == 250

    def test_mail_without_auth_gets_530(self, gateway: Gateway) -> None:
        with connect(gateway) as client:
            code, text = client.mail("sender@example.com")
            assert code == 530
            assert text.startswith(b"5.7.0")

    def test_five_failures_close_the_connection_with_421(self, gateway: Gateway) -> None:
        with connect(gateway) as client:
            for _ in range(4):
                assert client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0bad\0bad").decode())[0] == 535
            code, _ = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0bad\0bad").decode())
            assert code == 421
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()


class TestAuthFollowsTheServer:
    """Turning SMTP on or off and deleting a server take effect for the next AUTH and submission."""

    def auth_code(self, gateway: Gateway, token: str) -> int:
        with connect(gateway) as client:
            code, _ = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + token.encode() + b"\0" + token.encode()).decode())
            return code

    def test_turning_smtp_on_or_off_counts_at_the_next_auth(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        assert self.auth_code(gateway, smtp_server.token) == 235
        httpx.put(f"{clean_live_api}/server", json={"SmtpApiActivated": False}, headers=smtp_server.headers).raise_for_status()
        assert self.auth_code(gateway, smtp_server.token) == 535
        httpx.put(f"{clean_live_api}/server", json={"SmtpApiActivated": True}, headers=smtp_server.headers).raise_for_status()
        assert self.auth_code(gateway, smtp_server.token) == 235

    def test_new_server_token_works_at_once_after_a_refusal(self, gateway: Gateway, clean_live_api: str) -> None:
        account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        token = httpx.post(f"{clean_live_api}/servers", json={"Name": "Later"}, headers=account).json()["ApiTokens"][0]
        assert self.auth_code(gateway, token) == 535  # SMTP still off
        httpx.put(f"{clean_live_api}/server", json={"SmtpApiActivated": True}, headers={"X-Postmark-Server-Token": token})
        assert self.auth_code(gateway, token) == 235

    def test_deleted_server_token_is_refused_at_the_next_auth(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        assert self.auth_code(gateway, smtp_server.token) == 235
        account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        httpx.delete(f"{clean_live_api}/servers/{smtp_server.id}", headers=account).raise_for_status()
        assert self.auth_code(gateway, smtp_server.token) == 535

    def test_smtp_turned_off_elsewhere_refuses_the_next_submission(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str, database_url: str
    ) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            assert client.send_message(mail()) == {}
            # Another API process turns SMTP off: this process' caches never hear of it.
            set_smtp(database_url, smtp_server.id, enabled=False)
            with pytest.raises(smtplib.SMTPDataError) as caught:
                client.send_message(mail())
        assert caught.value.smtp_code == 550
        assert len(outbound(clean_live_api, smtp_server)) == 1


def set_smtp(database_url: str, server_id: int, *, enabled: bool) -> None:
    async def update() -> None:
        engine = create_async_engine(async_database_url(database_url))
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE servers SET smtp_api_activated = :on WHERE id = :id"), {"on": enabled, "id": server_id})
        await engine.dispose()

    asyncio.run(update())


class TestSubmission:
    def test_bcc_and_tag_are_stored_and_control_headers_stripped(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        message = mail(X_PM_Tag="welcome", X_PM_Metadata_customer="42")
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            refused = client.send_message(message, to_addrs=["to@example.net", "hidden@example.net"])
            assert refused == {}
        [stored] = outbound(clean_live_api, smtp_server)
        assert stored["Tag"] == "welcome"
        assert stored["Metadata"] == {"customer": "42"}
        assert sorted(stored["Recipients"]) == ["hidden@example.net", "to@example.net"]
        assert [b["Email"] for b in stored["Bcc"]] == ["hidden@example.net"]
        dump = httpx.get(f"{clean_live_api}/messages/outbound/{stored['MessageID']}/dump", headers=smtp_server.headers).json()["Body"]
        assert "X-PM-" not in dump
        assert f"Message-ID: <{stored['MessageID']}@example.com>" in dump

    def test_250_names_the_message_id(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.mail("sender@example.com")
            client.rcpt("to@example.net")
            code, text = client.data(mail().as_bytes())
        assert code == 250
        [stored] = outbound(clean_live_api, smtp_server)
        assert stored["MessageID"].encode() in text

    def test_keep_id_keeps_the_client_message_id(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.send_message(mail(Message_ID="<legacy-1@app.example>", X_PM_KeepID="true"))
        [stored] = outbound(clean_live_api, smtp_server)
        dump = httpx.get(f"{clean_live_api}/messages/outbound/{stored['MessageID']}/dump", headers=smtp_server.headers).json()["Body"]
        assert "Message-ID: <legacy-1@app.example>" in dump

    def test_a_connection_may_carry_more_than_a_hundred_messages(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        # Regression: aiosmtpd's command_call_limit once closed the connection at the 101st MAIL.
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            for i in range(105):
                assert client.send_message(mail(Message_ID=f"<bulk-{i}@app.example>")) == {}
        total = httpx.get(f"{clean_live_api}/messages/outbound?count=1&offset=0", headers=smtp_server.headers).json()["TotalCount"]
        assert total == 105

    def test_retry_of_the_same_message_is_stored_once(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        message = mail(Message_ID="<retry-1@app.example>")
        replies = []
        for _ in range(2):
            with connect(gateway) as client:
                client.login(smtp_server.token, smtp_server.token)
                client.mail("sender@example.com")
                client.rcpt("to@example.net")
                replies.append(client.data(message.as_bytes()))
        assert replies[0] == replies[1]
        assert len(outbound(clean_live_api, smtp_server)) == 1

    def test_recipients_past_the_limit_sent_again_are_not_dropped(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        """A client with 60 recipients gets 452 after the 50th and sends the same bytes to the other
        10 in a second transaction: that is a new message, not a retry of the first."""
        recipients = [f"r{i}@example.net" for i in range(60)]
        data = mail(Message_ID="<sixty@app.example>").as_bytes()
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            pending = recipients
            ids = []
            while pending:
                client.mail("sender@example.com")
                accepted = [r for r in pending if client.rcpt(r)[0] == 250]
                code, text = client.data(data)
                assert code == 250
                ids.append(text.split()[-1])
                pending = pending[len(accepted) :]
        assert len(ids) == 2
        assert ids[0] != ids[1]
        stored = outbound(clean_live_api, smtp_server)
        assert sorted(r for m in stored for r in m["Recipients"]) == sorted(recipients)

    def test_two_messages_reusing_a_message_id_are_both_stored(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            first = mail(Message_ID="<same@app.example>")
            second = mail(Message_ID="<same@app.example>")
            second.replace_header("Subject", "Another message")
            assert client.send_message(first, to_addrs=["to@example.net"]) == {}
            assert client.send_message(second, to_addrs=["to@example.net"]) == {}
        assert sorted(m["Subject"] for m in outbound(clean_live_api, smtp_server)) == ["Another message", "Hello over SMTP"]

    def test_bcc_only_mail_goes_to_the_envelope(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        """`To: undisclosed-recipients:;` is what mail programs write when every recipient is in Bcc."""
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            assert client.send_message(mail(to="undisclosed-recipients:;"), to_addrs=["a@example.net", "b@example.net"]) == {}
        [stored] = outbound(clean_live_api, smtp_server)
        assert stored["Status"] == "Queued"
        assert sorted(stored["Recipients"]) == ["a@example.net", "b@example.net"]
        assert httpx.get(f"{clean_live_api}/bounces?count=10&offset=0", headers=smtp_server.headers).json()["TotalCount"] == 0

    def test_a_second_from_header_is_bounced(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        """Only one From could be checked against the sender signatures; a reader may show the other."""
        data = b"From: sender@example.com\r\nFrom: ceo@victim.example\r\nTo: to@example.net\r\nSubject: Pay\r\n\r\nPay now\r\n"
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.sendmail("sender@example.com", ["to@example.net"], data)
        [bounce] = httpx.get(f"{clean_live_api}/bounces?count=10&offset=0&type=SMTPApiError", headers=smtp_server.headers).json()["Bounces"]
        assert "more than one 'From' header" in bounce["Details"]
        [stored] = outbound(clean_live_api, smtp_server)
        assert stored["Status"] == "Processed"

    def test_from_without_signature_is_accepted_then_bounced(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            assert client.send_message(mail(sender="stranger@elsewhere.example")) == {}
        bounces = httpx.get(f"{clean_live_api}/bounces?count=10&offset=0&type=SMTPApiError", headers=smtp_server.headers).json()["Bounces"]
        [bounce] = bounces
        assert bounce["TypeCode"] == 100007
        assert bounce["Email"] == "to@example.net"
        assert "not a Sender Signature" in bounce["Details"]
        assert bounce["DumpAvailable"] is True
        dump = httpx.get(f"{clean_live_api}/bounces/{bounce['ID']}/dump", headers=smtp_server.headers).json()["Body"]
        assert "stranger@elsewhere.example" in dump
        [stored] = outbound(clean_live_api, smtp_server)
        assert stored["Status"] == "Processed"

    def test_forbidden_attachment_is_bounced(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        message = mail()
        message.add_attachment(b"MZ", maintype="application", subtype="octet-stream", filename="setup.exe")
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.send_message(message)
        [bounce] = httpx.get(f"{clean_live_api}/bounces?count=10&offset=0", headers=smtp_server.headers).json()["Bounces"]
        assert "Attachment file type not allowed" in bounce["Details"]

    @pytest.mark.asyncio
    async def test_aiosmtplib_client(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        response = await aiosmtplib.send(
            mail(), hostname="127.0.0.1", port=gateway.port, username=smtp_server.token, password=smtp_server.token, start_tls=False
        )
        assert response[1].startswith("2.0.0 Ok: queued as")
        assert len(outbound(clean_live_api, smtp_server)) == 1


class TestApiDown:
    def test_unreachable_api_gets_451_and_the_retry_is_stored(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        message = mail(Message_ID="<down-1@app.example>").as_bytes()
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.mail("sender@example.com")
            client.rcpt("to@example.net")
            gateway.relay.cut()
            try:
                code, text = client.data(message)
            finally:
                gateway.relay.restore()
            assert code == 451
            assert text.startswith(b"4.3.0")
            client.rset()
            client.mail("sender@example.com")
            client.rcpt("to@example.net")
            assert client.data(message)[0] == 250
        assert len(outbound(clean_live_api, smtp_server)) == 1


class TestProtocolSafety:
    def raw_session(self, gateway: Gateway, token: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
        sock.recv(1024)
        plain = base64.b64encode(f"\0{token}\0{token}".encode()).decode()
        for line in ("EHLO x.example", f"AUTH PLAIN {plain}"):
            sock.sendall(line.encode() + b"\r\n")
            time.sleep(0.05)
            sock.recv(4096)
        return sock

    def exchange(self, sock: socket.socket, data: bytes) -> bytes:
        sock.sendall(data)
        time.sleep(0.3)
        return sock.recv(4096)

    @pytest.mark.parametrize(
        "ending",
        [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n"],
        ids=["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR", "CR.CRLF"],
    )
    def test_smuggled_message_is_never_stored(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str, ending: bytes
    ) -> None:
        sock = self.raw_session(gateway, smtp_server.token)
        try:
            reply = self.exchange(sock, b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<to@example.net>\r\nDATA\r\n")
            assert b"354" in reply
            smuggled = (
                b"From: sender@example.com\r\nTo: to@example.net\r\nSubject: first\r\n\r\nbody"
                + ending
                + b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
                + b"From: sender@example.com\r\nTo: victim@example.net\r\nSubject: forged\r\n\r\nforged\r\n.\r\n"
            )
            reply = self.exchange(sock, smuggled)
            assert self.exchange(sock, b"NOOP\r\n").startswith(b"250")
        finally:
            sock.close()
        stored = outbound(clean_live_api, smtp_server)
        assert all("victim@example.net" not in m["Recipients"] for m in stored)
        if reply.startswith(b"250"):
            # CRLF "." LF: aiosmtpd removes the dot as dot-stuffing before the gateway sees it, so
            # the rest is plain body text of one message, with its bare LF normalised: nothing
            # that a server downstream could read as an end of data.
            assert ending == b"\r\n.\n"
            [message] = stored
            dump = httpx.get(f"{clean_live_api}/messages/outbound/{message['MessageID']}/dump", headers=smtp_server.headers).json()["Body"]
            assert "\r\n.\r\n" not in dump
            assert "\n" not in dump.replace("\r\n", "")
        else:
            assert reply.startswith(b"550 5.5.2"), reply
            assert stored == []

    def test_bare_line_feeds_elsewhere_are_normalised(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        sock = self.raw_session(gateway, smtp_server.token)
        try:
            self.exchange(sock, b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<to@example.net>\r\nDATA\r\n")
            reply = self.exchange(sock, b"From: sender@example.com\nTo: to@example.net\nSubject: lf\n\nline one\nline two\r\n.\r\n")
            assert reply.startswith(b"250"), reply
        finally:
            sock.close()
        [stored] = outbound(clean_live_api, smtp_server)
        dump = httpx.get(f"{clean_live_api}/messages/outbound/{stored['MessageID']}/dump", headers=smtp_server.headers).json()["Body"]
        assert "line one\r\nline two" in dump

    def test_oversize_gets_552(self, gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        message = mail()
        message.set_content("x" * (gateway.settings.smtp_max_message_bytes + 1000))
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.send_message(message)
            assert caught.value.smtp_code == 552
            assert client.noop()[0] == 250

    def test_fifty_first_recipient_gets_452(self, gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        with connect(gateway) as client:
            client.login(smtp_server.token, smtp_server.token)
            client.mail("sender@example.com")
            codes = [client.rcpt(f"r{i}@example.net")[0] for i in range(51)]
            assert codes[:50] == [250] * 50
            assert codes[50] == 452

    def test_garbage_is_refused_and_the_server_keeps_serving(self, gateway: Gateway) -> None:
        with connect(gateway) as client:
            assert client.docmd("FROBNICATE")[0] == 500
            assert client.docmd("MAIL", "FROM:not an address")[0] in (501, 530)
            assert client.docmd("DATA")[0] in (503, 530)
            assert client.docmd("\x00\x01\x02")[0] in (500, 501)
            assert client.noop()[0] == 250
        with connect(gateway) as client:
            assert client.noop()[0] == 250

    def test_client_dropping_mid_data_stores_nothing(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        sock = self.raw_session(gateway, smtp_server.token)
        self.exchange(sock, b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<to@example.net>\r\nDATA\r\n")
        sock.sendall(b"From: sender@example.com\r\nTo: to@example.net\r\nSubject: cut\r\n\r\nhalf a mess")
        sock.close()
        time.sleep(0.3)
        assert outbound(clean_live_api, smtp_server) == []


class TestTls:
    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def test_starttls_then_auth_and_send(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        with connect(gateway) as client:
            client.starttls(context=self.context())
            client.ehlo("client.example")
            client.login(smtp_server.token, smtp_server.token)
            assert client.send_message(mail()) == {}
        assert len(outbound(clean_live_api, smtp_server)) == 1

    def test_implicit_tls_port(self, gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        with smtplib.SMTP_SSL("127.0.0.1", gateway.tls_port, context=self.context(), timeout=10) as client:
            client.login(smtp_server.token, smtp_server.token)
            assert client.send_message(mail()) == {}
        assert len(outbound(clean_live_api, smtp_server)) == 1

    def test_cram_md5_digest_is_checked(self, gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        with connect(gateway) as client:
            code, challenge = client.docmd("AUTH", "CRAM-MD5")
            assert code == 334
            wrong = hmac.new(b"other key", base64.b64decode(challenge), "md5").hexdigest()
            code, _ = client.docmd(base64.b64encode(f"{smtp_server.token} {wrong}".encode()).decode())
            assert code == 535
