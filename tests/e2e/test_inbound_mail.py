"""Inbound mail end to end, as `make run` runs it: a real SMTP client sends to the MX listener, the
real worker process POSTs Postmark's inbound JSON to a real HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import socket
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.api.conftest import Receiver, receiver
from tests.e2e.conftest import RunningPostgate

__all__ = ["receiver"]
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbound"
PNG, PDF = (FIXTURES / "logo.png").read_bytes(), (FIXTURES / "invoice.pdf").read_bytes()
REPLY = "Thanks, the update fixed it — merci beaucoup! 🎉"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 30) -> T:
    """The first truthy answer of `probe`, polled until `timeout` (a deadline, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Api:
    def __init__(self, postgate: RunningPostgate, name: str, receiver: Receiver) -> None:
        self.url = postgate.api_url
        account = {"X-Postmark-Account-Token": postgate.account_token, "Accept": "application/json"}
        created = httpx.post(f"{self.url}/servers", json={"Name": name, "InboundHookUrl": receiver.url}, headers=account)
        assert created.status_code == 200, created.text
        self.server = created.json()
        self.headers = {"X-Postmark-Server-Token": self.server["ApiTokens"][0], "Accept": "application/json"}
        self.address: str = self.server["InboundAddress"]
        eventually(lambda: listening(postgate.inbound_port))

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def put(self, path: str) -> Any:
        response = httpx.put(f"{self.url}{path}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def status(self, message_id: str) -> str:
        status: str = self.get(f"/messages/inbound/{message_id}/details")["Status"]
        return status

    def plus(self, mailbox_hash: str) -> str:
        local, _, domain = self.address.partition("@")
        return f"{local}+{mailbox_hash}@{domain}"


def reply_mail(*, to: str) -> EmailMessage:
    """A reply as mail programs write one: UTF-8 subject, text and HTML with a quote, an inline image, a PDF."""
    message = EmailMessage()
    message["From"] = "Zoë Kunde <zoe@customer.example>"
    message["To"] = f"Support <{to}>"
    message["Subject"] = "Re: Ticket 42 — Grüße aus Köln"
    message["Message-ID"] = make_msgid(domain="customer.example")
    message["In-Reply-To"] = "<ticket-42@app.example>"
    message.set_content(
        f"{REPLY}\n\nOn Mon, 3 Mar 2025 at 10:02, Postgate Support <support@app.example> wrote:\n> Did the update help?\n> Ticket 42\n",
        cte="quoted-printable",
    )
    message.add_alternative(
        f'<p>{REPLY}</p><img src="cid:logo@customer.example"><blockquote>Did the update help?</blockquote>', subtype="html"
    )
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    html.add_related(PNG, "image", "png", cid="<logo@customer.example>", filename="logo.png")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Rechnung März.pdf")
    return message


def test_a_reply_reaches_the_hook_as_postmark_json(postgate: RunningPostgate, receiver: Receiver) -> None:
    api = Api(postgate, "Inbound done-when", receiver)
    with smtplib.SMTP("127.0.0.1", postgate.inbound_port, timeout=10) as mta:
        mta.ehlo("mx.customer.example")
        assert mta.sendmail("zoe@customer.example", [api.plus("ticket42")], reply_mail(to=api.plus("ticket42")).as_bytes(policy=SMTP)) == {}
    [hook] = eventually(lambda: list(receiver.hooks))
    payload = hook.json
    assert payload["MailboxHash"] == "ticket42"
    assert payload["OriginalRecipient"] == api.plus("ticket42")
    assert payload["Subject"] == "Re: Ticket 42 — Grüße aus Köln"
    assert (payload["From"], payload["FromName"]) == ("zoe@customer.example", "Zoë Kunde")
    assert payload["ToFull"] == [{"Email": api.plus("ticket42"), "Name": "Support", "MailboxHash": "ticket42"}]
    assert payload["StrippedTextReply"].strip() == REPLY
    assert payload["TextBody"].startswith(REPLY + "\r\n\r\nOn Mon, 3 Mar 2025")
    assert f"<p>{REPLY}</p>" in payload["HtmlBody"]
    logo, pdf = payload["Attachments"]
    assert (logo["Name"], logo["ContentType"], logo["ContentID"], base64.b64decode(logo["Content"])) == (
        "logo.png",
        "image/png",
        "logo@customer.example",
        PNG,
    )
    assert (pdf["Name"], pdf["ContentType"], pdf["ContentLength"], base64.b64decode(pdf["Content"])) == (
        "Rechnung März.pdf",
        "application/pdf",
        len(PDF),
        PDF,
    )
    assert payload["Headers"][0]["Name"] == "Received"
    secret = api.server["WebhookSecret"]
    signed = hook.headers["X-Postgate-Timestamp"].encode() + b"." + hook.body
    assert hook.headers["X-Postgate-Signature"] == "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    eventually(lambda: api.status(payload["MessageID"]) == "Processed")


def test_mail_to_several_plus_addresses_is_posted_once(postgate: RunningPostgate, receiver: Receiver) -> None:
    api = Api(postgate, "Inbound plus addresses", receiver)
    recipients = [api.plus(h) for h in ("ticket7", "ticket8", "ticket9")]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ann@example.com", ", ".join(recipients[1:]), "Three tickets"
    message.set_content("Hello")
    with smtplib.SMTP("127.0.0.1", postgate.inbound_port, timeout=10) as mta:
        mta.ehlo("mx.example")
        assert mta.sendmail("ann@example.com", recipients, message.as_bytes(policy=SMTP)) == {}
    [hook] = eventually(lambda: list(receiver.hooks))
    eventually(lambda: api.status(hook.json["MessageID"]) == "Processed")
    assert len(receiver.hooks) == 1
    assert (hook.json["OriginalRecipient"], hook.json["MailboxHash"]) == (recipients[0], "ticket7")
    assert [(a["Email"], a["MailboxHash"]) for a in hook.json["ToFull"]] == [(recipients[1], "ticket8"), (recipients[2], "ticket9")]
    assert [(a["Email"], a["MailboxHash"]) for a in hook.json["BccFull"]] == [(recipients[0], "ticket7")]
    assert api.get("/messages/inbound?count=10&offset=0")["TotalCount"] == 1


def test_retries_blocking_bypass_and_relaying(postgate: RunningPostgate, receiver: Receiver) -> None:
    api = Api(postgate, "Inbound retries", receiver)

    def send(sender: str, subject: str) -> str:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, api.address, subject
        message.set_content("Hello")
        with smtplib.SMTP("127.0.0.1", postgate.inbound_port, timeout=10) as mta:
            mta.ehlo("mx.example")
            mta.mail(sender)
            mta.rcpt(api.address)
            code, text = mta.data(message.as_bytes(policy=SMTP))
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[1]

    # A receiver that keeps failing gets the first attempt and both retries, then the message fails.
    receiver.statuses.extend([500, 500, 500])
    failing = send("ann@example.com", "Failing")
    eventually(lambda: api.status(failing) == "Failed")
    assert [h.json["MessageID"] for h in receiver.hooks] == [failing] * 3
    bounces = api.get("/bounces?count=10&offset=0&messagestream=inbound")["Bounces"]
    assert [(b["Type"], failing in b["Details"]) for b in bounces] == [("InboundError", True)]
    assert api.put(f"/messages/inbound/{failing}/retry")["ErrorCode"] == 0
    eventually(lambda: api.status(failing) == "Processed")
    assert len(receiver.hooks) == 4

    # A blocked sender is not posted; a later message is, and bypass posts the blocked one.
    rule = httpx.post(f"{api.url}/triggers/inboundrules", json={"Rule": "spam.example"}, headers=api.headers)
    assert rule.status_code == 200, rule.text
    blocked = send("promo@spam.example", "Blocked")
    allowed = send("bob@example.org", "Allowed")
    eventually(lambda: any(h.json["MessageID"] == allowed for h in receiver.hooks))
    assert api.status(blocked) == "Blocked"
    assert all(h.json["MessageID"] != blocked for h in receiver.hooks)
    assert api.put(f"/messages/inbound/{blocked}/bypass")["ErrorCode"] == 0
    eventually(lambda: any(h.json["MessageID"] == blocked for h in receiver.hooks))
    eventually(lambda: api.status(blocked) == "Processed")

    # Mail for a domain Postgate does not own is refused at RCPT.
    with smtplib.SMTP("127.0.0.1", postgate.inbound_port, timeout=10) as mta:
        mta.ehlo("mx.example")
        mta.mail("ann@example.com")
        code, text = mta.rcpt("victim@example.net")
    assert (code, text[:5]) == (550, b"5.7.1")
