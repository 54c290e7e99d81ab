"""Sender signatures with SENDER_AUTO_CONFIRM off: the link mailed through Postgate's own intake, the
public confirmation page, the send rule (REST and SMTP), resend, and the DNS actions."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from api_service.models import Bounce, Message, SenderSignature, Server
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.api.conftest import MakeApp, OtherApp
from tests.api.core.dns_server import Zone, dns_server
from tests.factories import ACCOUNT, INTERNAL, create_domain, create_sender, create_server, message

pytestmark = pytest.mark.asyncio

PUBLIC_URL = "https://mail.example.net"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/confirm/sender/([A-Za-z0-9_-]+)")


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def strict(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    return await other_app(
        sender_auto_confirm=False, public_url=PUBLIC_URL + "/", system_from="noreply@mail.example.net", dns_resolver=zone[1]
    )


async def system_mail(app: OtherApp) -> list[Message]:
    async with app.app.state.sessionmaker() as session:
        stmt = (
            select(Message)
            .join(Server, Server.id == Message.server_id)
            .where(Server.name == "Postgate system")
            .order_by(Message.created_at)
        )
        return list((await session.execute(stmt)).scalars().all())


def text_of(row: Message) -> str:
    parsed = message_from_bytes(row.raw_mime, _class=EmailMessage, policy=policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def link_of(app: OtherApp, index: int = -1) -> str:
    match = LINK.search(text_of((await system_mail(app))[index]))
    assert match, "no confirmation link in the mail"
    return f"/confirm/sender/{match.group(1)}"


async def signature(app: OtherApp, email: str) -> SenderSignature:
    async with app.app.state.sessionmaker() as session:
        found: SenderSignature = (await session.execute(select(SenderSignature).where(SenderSignature.email == email))).scalar_one()
        return found


class TestConfirmationMail:
    async def test_new_signature_is_unconfirmed_and_gets_a_link_through_postgates_own_intake(self, strict: OtherApp) -> None:
        created = await create_sender(strict.client, "Ops@Example.com", "Ops", ConfirmationPersonalNote="For the billing mails")
        assert created["Confirmed"] is False
        [mail] = await system_mail(strict)
        assert mail.recipients == ["ops@example.com"]
        assert mail.from_email == "noreply@mail.example.net"
        assert (mail.tag, mail.message_stream, mail.status) == ("sender-confirmation", "outbound", "Queued")
        assert "For the billing mails" in text_of(mail)
        assert await link_of(strict)
        servers = (await strict.client.get("/servers?count=10&offset=0", headers=ACCOUNT)).json()["Servers"]
        assert [s["Name"] for s in servers] == ["Postgate system"]
        senders = (await strict.client.get("/senders?count=10&offset=0", headers=ACCOUNT)).json()["SenderSignatures"]
        assert {(s["EmailAddress"], s["Confirmed"]) for s in senders} == {("ops@example.com", False), ("noreply@mail.example.net", True)}

    async def test_auto_confirm_confirms_at_once_and_mails_nothing(self, client: httpx.AsyncClient) -> None:
        created = await create_sender(client, "ops@example.com", "Ops")
        assert created["Confirmed"] is True
        assert (await client.get("/servers?count=10&offset=0", headers=ACCOUNT)).json()["TotalCount"] == 0


class TestConfirmationPage:
    async def test_get_asks_and_only_post_confirms_once(self, strict: OtherApp) -> None:
        await create_sender(strict.client, "ops@example.com", "Ops")
        link = await link_of(strict)
        shown = await strict.client.get(link)
        assert shown.status_code == 200
        assert "ops@example.com" in shown.text
        assert '<form method="post">' in shown.text
        assert shown.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in shown.headers["content-security-policy"]
        assert (await signature(strict, "ops@example.com")).confirmed is False

        confirmed = await strict.client.post(link, content=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert confirmed.status_code == 200
        assert "is confirmed" in confirmed.text
        row = await signature(strict, "ops@example.com")
        assert (row.confirmed, row.confirmation_token_sha256) == (True, None)
        assert (await strict.client.post(link)).status_code == 404
        assert (await strict.client.get(link)).status_code == 404

    async def test_the_token_is_case_sensitive(self, strict: OtherApp) -> None:
        await create_sender(strict.client, "ops@example.com", "Ops")
        link = await link_of(strict)
        token = link.rsplit("/", 1)[1]
        changed = link[: -len(token)] + token.swapcase()
        assert (await strict.client.post(changed)).status_code == 404
        assert (await strict.client.post(link)).status_code == 200

    async def test_an_expired_link_does_not_confirm(self, strict: OtherApp) -> None:
        await create_sender(strict.client, "ops@example.com", "Ops")
        async with strict.app.state.sessionmaker() as session, session.begin():
            past = datetime.now(UTC) - timedelta(seconds=1)
            await session.execute(update(SenderSignature).values(confirmation_expires_at=past))
        response = await strict.client.post(await link_of(strict))
        assert response.status_code == 404
        assert "does not work any more" in response.text
        assert (await signature(strict, "ops@example.com")).confirmed is False

    async def test_unknown_token_is_404(self, strict: OtherApp) -> None:
        assert (await strict.client.get("/confirm/sender/nope")).status_code == 404


class TestResend:
    async def test_resend_mails_a_new_link_and_the_old_one_stops_working(self, strict: OtherApp) -> None:
        created = await create_sender(strict.client, "ops@example.com", "Ops")
        first = await link_of(strict)
        resent = await strict.client.post(f"/senders/{created['ID']}/resend", headers=ACCOUNT)
        assert resent.status_code == 200
        assert resent.json()["ErrorCode"] == 0
        assert len(await system_mail(strict)) == 2
        second = await link_of(strict)
        assert second != first
        assert (await strict.client.post(first)).status_code == 404
        assert (await strict.client.post(second)).status_code == 200

    async def test_resend_to_a_confirmed_signature_returns_506(self, strict: OtherApp) -> None:
        created = await create_sender(strict.client, "ops@example.com", "Ops")
        await strict.client.post(await link_of(strict))
        response = await strict.client.post(f"/senders/{created['ID']}/resend", headers=ACCOUNT)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 506)

    async def test_resend_to_an_unknown_signature_returns_501(self, strict: OtherApp) -> None:
        response = await strict.client.post("/senders/999/resend", headers=ACCOUNT)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 501)


class TestSendRule:
    async def test_an_unconfirmed_signature_cannot_send_until_confirmed(self, strict: OtherApp) -> None:
        server = await create_server(strict.client)
        await create_sender(strict.client, "ops@example.com", "Ops")
        refused = await strict.client.post("/email", json=message(From="ops@example.com"), headers=server.headers)
        assert (refused.status_code, refused.json()["ErrorCode"]) == (422, 400)
        assert "not a confirmed Sender Signature" in refused.json()["Message"]
        await strict.client.post(await link_of(strict))
        sent = await strict.client.post("/email", json=message(From="ops@example.com"), headers=server.headers)
        assert sent.status_code == 200, sent.text

    async def test_a_confirmed_domain_lets_an_unconfirmed_signature_send(self, strict: OtherApp, zone: tuple[Zone, str]) -> None:
        server = await create_server(strict.client)
        await create_sender(strict.client, "ops@example.com", "Ops")
        domain = await create_domain(strict.client, "example.com")
        zone[0].txt(domain["DKIMHost"], domain["DKIMTextValue"])
        await strict.client.put(f"/domains/{domain['ID']}/verifyDkim", headers=ACCOUNT)
        sent = await strict.client.post("/email", json=message(From="ops@example.com"), headers=server.headers)
        assert sent.status_code == 200, sent.text

    async def test_over_smtp_an_unconfirmed_signature_becomes_an_smtp_api_error_bounce(self, strict: OtherApp) -> None:
        server = await create_server(strict.client, SmtpApiActivated=True)
        await create_sender(strict.client, "ops@example.com", "Ops")
        raw = b"From: ops@example.com\r\nTo: you@example.net\r\nSubject: Hi\r\nMessage-ID: <m1@example.com>\r\n\r\nHello\r\n"
        submission = {"MailFrom": "ops@example.com", "RcptTo": ["you@example.net"], "RawMessage": base64.b64encode(raw).decode()}
        response = await strict.client.post(SMTP_SUBMIT_PATH, json=submission, headers=server.headers | INTERNAL)
        assert response.status_code == 200, response.text
        assert (response.json()["Accepted"], response.json()["Refused"]) == (0, 1)
        async with strict.app.state.sessionmaker() as session:
            [bounce] = (await session.execute(select(Bounce).where(Bounce.server_id == server.id))).scalars().all()
        assert (bounce.type, bounce.email) == ("SMTPApiError", "you@example.net")
        assert "not a confirmed Sender Signature" in bounce.details


class TestDnsActions:
    async def test_details_show_the_dkim_of_the_signatures_domain(self, strict: OtherApp) -> None:
        created = await create_sender(strict.client, "ops@example.com", "Ops")
        assert created["DKIMHost"] == ""
        domain = await create_domain(strict.client, "example.com")
        got = (await strict.client.get(f"/senders/{created['ID']}", headers=ACCOUNT)).json()
        assert (got["DKIMHost"], got["DKIMTextValue"]) == (domain["DKIMHost"], domain["DKIMTextValue"])
        assert got["SPFHost"] == "example.com"

    async def test_request_new_dkim_rotates_the_domains_key(self, strict: OtherApp) -> None:
        created = await create_sender(strict.client, "ops@example.com", "Ops")
        missing = await strict.client.post(f"/senders/{created['ID']}/requestNewDkim", headers=ACCOUNT)
        assert (missing.status_code, missing.json()["ErrorCode"]) == (422, 510)
        domain = await create_domain(strict.client, "example.com")
        rotated = await strict.client.post(f"/senders/{created['ID']}/requestnewdkim", headers=ACCOUNT)
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert (body["DKIMUpdateStatus"], body["DKIMHost"], body["EmailAddress"]) == ("Pending", domain["DKIMHost"], "ops@example.com")
        assert body["DKIMPendingHost"]
        again = await strict.client.post(f"/senders/{created['ID']}/requestnewdkim", headers=ACCOUNT)
        assert again.json()["ErrorCode"] == 505

    async def test_verify_spf_looks_up_the_signatures_domain(self, strict: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_sender(strict.client, "ops@example.com", "Ops")
        assert (await strict.client.post(f"/senders/{created['ID']}/verifySpf", headers=ACCOUNT)).json()["SPFVerified"] is False
        zone[0].txt("example.com", "v=spf1 a mx include:relay.example.net ~all")
        assert (await strict.client.post(f"/senders/{created['ID']}/verifyspf", headers=ACCOUNT)).json()["SPFVerified"] is True

    async def test_an_unknown_signature_returns_501(self, strict: OtherApp) -> None:
        for action in ("verifyspf", "requestnewdkim"):
            response = await strict.client.post(f"/senders/999/{action}", headers=ACCOUNT)
            assert (response.status_code, response.json()["ErrorCode"]) == (404, 501)
