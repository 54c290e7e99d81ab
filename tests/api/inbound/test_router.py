"""The inbound API in-process: the gateway's hop, /messages/inbound and /triggers/inboundrules."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from api_service.models import WebhookDelivery
from shared.schemas.inbound import InboundMessageDetails, InboundMessageSummary
from shared.schemas.inbound_smtp import INBOUND_RECIPIENT_PATH
from tests.api.inbound.conftest import FIXTURES, INBOUND_DOMAIN, deliver, details, fixture, inbound_address, received, simple
from tests.factories import ACCOUNT, ServerHandle, create_server

pytestmark = pytest.mark.asyncio

# The keys of postmark.js's InboundMessage (search) and InboundMessageDetails.
SUMMARY_KEYS = {
    "From", "FromName", "FromFull", "To", "ToFull", "Cc", "CcFull", "Bcc", "BccFull", "ReplyTo", "OriginalRecipient", "Subject",
    "Date", "MailboxHash", "Tag", "MessageID", "Status", "Attachments", "MessageStream",
}  # fmt: skip
PNG, PDF = (FIXTURES / "logo.png").read_bytes(), (FIXTURES / "invoice.pdf").read_bytes()
DETAIL_KEYS = SUMMARY_KEYS | {"TextBody", "HtmlBody", "StrippedTextReply", "Headers", "BlockedReason"}


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await create_server(client, "Support")


async def outbox(app_client: httpx.AsyncClient) -> list[WebhookDelivery]:
    app = app_client._transport.app  # type: ignore[attr-defined]
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars().all())


async def check(client: httpx.AsyncClient, address: str) -> dict[str, bool]:
    response = await client.post(INBOUND_RECIPIENT_PATH, json={"Address": address}, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    verdict: dict[str, bool] = response.json()
    return verdict


class TestRecipientCheck:
    async def test_hash_addresses_with_or_without_mailbox_hash_are_accepted(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        address = await inbound_address(client, server)
        assert address.endswith(f"@{INBOUND_DOMAIN}")
        local = address.partition("@")[0]
        for candidate in (address, f"{local}+ticket42@{INBOUND_DOMAIN}", f"{local.upper()}@{INBOUND_DOMAIN.upper()}"):
            assert await check(client, candidate) == {"Accepted": True, "DomainAccepted": True}

    async def test_unknown_hash_is_refused_but_the_domain_is_ours(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert await check(client, f"0123456789abcdef@{INBOUND_DOMAIN}") == {"Accepted": False, "DomainAccepted": True}

    async def test_any_address_at_a_servers_inbound_domain_is_accepted(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put("/server", json={"InboundDomain": "Replies.Example.COM"}, headers=server.headers)
        assert await check(client, "anyone+x@replies.example.com") == {"Accepted": True, "DomainAccepted": True}
        assert await check(client, "anyone@example.com") == {"Accepted": False, "DomainAccepted": False}

    async def test_foreign_domains_are_refused_outright(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert await check(client, "victim@example.net") == {"Accepted": False, "DomainAccepted": False}
        assert await check(client, "no-at-sign") == {"Accepted": False, "DomainAccepted": False}

    async def test_needs_the_account_token(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post(INBOUND_RECIPIENT_PATH, json={"Address": "x@example.net"}, headers=server.headers)
        assert response.status_code == 401


class TestReceive:
    async def test_without_a_hook_the_message_is_stored_as_processed(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        address = await inbound_address(client, server, "ticket42")
        [message_id] = await received(client, fixture("gmail_reply.eml"), address)
        got = await details(client, server, message_id)
        assert set(got) == DETAIL_KEYS
        assert got["Status"] == "Processed"
        assert got["MessageID"] == message_id
        assert got["MailboxHash"] == "ticket42"
        assert got["OriginalRecipient"] == address
        assert got["Subject"] == "Re: Grüße aus München"
        assert got["StrippedTextReply"].startswith("Danke, Dienstag um 14 Uhr passt mir gut.")
        assert "wrote:" not in got["StrippedTextReply"]
        assert got["BlockedReason"] == ""
        assert got["MessageStream"] == "inbound"
        assert await outbox(client) == []

    async def test_with_a_hook_it_is_queued_in_the_outbox_on_the_inbound_schedule(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        await client.put("/server", json={"InboundHookUrl": "https://hooks.example.com/inbound"}, headers=server.headers)
        [message_id] = await received(client, fixture("inline_image_and_pdf.eml"), await inbound_address(client, server))
        assert (await details(client, server, message_id))["Status"] == "Queued"
        [row] = await outbox(client)
        assert (row.record_type, row.url, row.origin_id, row.retry_schedule) == (
            "Inbound",
            "https://hooks.example.com/inbound",
            message_id,
            [0, 0],
        )
        assert row.payload["MessageID"] == message_id
        assert [a["Name"] for a in row.payload["Attachments"]] == ["logo.png", "Invoice-2025-0042.pdf"]
        assert all(a["Content"] for a in row.payload["Attachments"])
        assert "RawEmail" not in row.payload

    async def test_raw_email_is_posted_when_enabled(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put(
            "/server", json={"InboundHookUrl": "https://hooks.example.com/in", "RawEmailEnabled": True}, headers=server.headers
        )
        await received(client, simple(subject="Raw"), await inbound_address(client, server))
        [row] = await outbox(client)
        assert "Subject: Raw" in row.payload["RawEmail"]

    async def test_one_message_per_recipient_and_none_for_strangers(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_server(client, "Billing")
        await client.put("/server", json={"InboundDomain": "billing.example.com"}, headers=other.headers)
        mine = await inbound_address(client, server, "a")
        ids = await received(client, simple(), mine, mine, "accounts@billing.example.com", "stranger@example.net")
        assert len(ids) == 2
        [at_mine] = (await client.get("/messages/inbound?count=10&offset=0", headers=server.headers)).json()["InboundMessages"]
        [at_other] = (await client.get("/messages/inbound?count=10&offset=0", headers=other.headers)).json()["InboundMessages"]
        assert (at_mine["OriginalRecipient"], at_other["OriginalRecipient"]) == (mine, "accounts@billing.example.com")
        # Neither address is in To: each message names its own recipient in Bcc.
        assert [b["Email"] for b in at_other["BccFull"]] == ["accounts@billing.example.com"]

    async def test_plus_addresses_of_one_server_are_one_message_and_one_post(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put("/server", json={"InboundHookUrl": "https://hooks.example.com/in"}, headers=server.headers)
        other = await create_server(client, "Billing")
        await client.put("/server", json={"InboundDomain": "billing.example.com"}, headers=other.headers)
        a, b, c = [await inbound_address(client, server, h) for h in ("a", "b", "c")]
        ids = await received(client, simple(to=f"Bea <{b}>"), a, "accounts@billing.example.com", b.upper(), c, a)
        assert len(ids) == 2
        [mine] = (await client.get("/messages/inbound?count=10&offset=0", headers=server.headers)).json()["InboundMessages"]
        assert (mine["MessageID"], mine["OriginalRecipient"], mine["MailboxHash"]) == (ids[0], a, "a")
        assert [(r["Email"], r["MailboxHash"]) for r in mine["ToFull"]] == [(b, "b")]
        # The recipients To does not name are in Bcc, in envelope order, each with its own hash.
        assert [(r["Email"], r["MailboxHash"]) for r in mine["BccFull"]] == [(a, "a"), (c, "c")]
        [row] = await outbox(client)
        assert (row.origin_id, row.payload["MailboxHash"], row.payload["BccFull"]) == (ids[0], "a", mine["BccFull"])
        for recipient in (a, b, c):
            query = {"count": "10", "offset": "0", "recipient": recipient}
            found = (await client.get("/messages/inbound", params=query, headers=server.headers)).json()
            assert [m["MessageID"] for m in found["InboundMessages"]] == [ids[0]]
        [at_other] = (await client.get("/messages/inbound?count=10&offset=0", headers=other.headers)).json()["InboundMessages"]
        assert (at_other["OriginalRecipient"], at_other["BccFull"][0]["Email"]) == (
            "accounts@billing.example.com",
            "accounts@billing.example.com",
        )

    async def test_no_inbound_recipient_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await deliver(client, simple(), "victim@example.net")
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)

    async def test_the_listener_must_use_the_account_token(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post(
            "/internal/inbound/messages", json={"MailFrom": "", "RcptTo": ["x@y.z"], "RawMessage": ""}, headers=server.headers
        )
        assert response.status_code == 401


class TestSearch:
    @pytest_asyncio.fixture
    async def filled(self, client: httpx.AsyncClient, server: ServerHandle) -> ServerHandle:
        await client.post("/triggers/inboundrules", json={"Rule": "spam.example"}, headers=server.headers)
        await received(client, simple(sender="Ann <ann@example.com>", subject="Order 1"), await inbound_address(client, server, "t1"))
        await received(
            client,
            simple(sender="Bob <bob@example.org>", subject="Order 2", to="desk@example.net"),
            await inbound_address(client, server, "t2"),
        )
        await received(client, simple(sender="x@spam.example", subject="Cheap pills"), await inbound_address(client, server))
        return server

    @pytest.mark.parametrize(
        ("query", "subjects"),
        [
            ("", ["Cheap pills", "Order 2", "Order 1"]),
            ("mailboxhash=t1", ["Order 1"]),
            ("mailboxHash=t2", ["Order 2"]),
            ("fromemail=example.org", ["Order 2"]),
            ("recipient=desk@example.net", ["Order 2"]),
            ("subject=order", ["Order 2", "Order 1"]),
            ("status=blocked", ["Cheap pills"]),
            ("status=Processed", ["Order 2", "Order 1"]),
            ("status=failed", []),
            ("tag=x", []),
            ("fromdate=2000-01-01&todate=2999-12-31", ["Cheap pills", "Order 2", "Order 1"]),
            ("todate=2000-01-01", []),
        ],
    )
    async def test_filters(self, client: httpx.AsyncClient, filled: ServerHandle, query: str, subjects: list[str]) -> None:
        response = await client.get(f"/messages/inbound?count=50&offset=0&{query}", headers=filled.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["TotalCount"] == len(subjects)
        assert [m["Subject"] for m in body["InboundMessages"]] == subjects

    async def test_summaries_have_postmarks_keys_and_no_attachment_content(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await received(client, fixture("inline_image_and_pdf.eml"), await inbound_address(client, server))
        [summary] = (await client.get("/messages/inbound?count=1&offset=0", headers=server.headers)).json()["InboundMessages"]
        assert set(summary) == SUMMARY_KEYS
        InboundMessageSummary.model_validate(summary)
        assert summary["Attachments"] == [
            {"Name": "logo.png", "ContentType": "image/png", "ContentLength": len(PNG), "ContentID": "logo.7f3a@acme.example"},
            {"Name": "Invoice-2025-0042.pdf", "ContentType": "application/pdf", "ContentLength": len(PDF), "ContentID": ""},
        ]
        InboundMessageDetails.model_validate(await details(client, server, summary["MessageID"]))

    @pytest.mark.parametrize("query", ["count=500&offset=9600", "count=5&offset=0&status=lost", "count=5&offset=0&fromdate=yesterday"])
    async def test_bad_queries_return_700(self, client: httpx.AsyncClient, server: ServerHandle, query: str) -> None:
        response = await client.get(f"/messages/inbound?{query}", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 700)

    async def test_unknown_or_foreign_messages_are_701(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_server(client, "Other")
        [theirs] = await received(client, simple(), await inbound_address(client, other))
        for message_id in (theirs, "not-a-uuid", "00000000-0000-0000-0000-000000000001"):
            for method, path in (("GET", "details"), ("PUT", "bypass"), ("PUT", "retry")):
                response = await client.request(method, f"/messages/inbound/{message_id}/{path}", headers=server.headers)
                assert (response.status_code, response.json()["ErrorCode"]) == (404, 701)


class TestBlocking:
    async def test_a_rule_blocks_the_sender_and_bypass_posts_it(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put("/server", json={"InboundHookUrl": "https://hooks.example.com/in"}, headers=server.headers)
        await client.post("/triggers/inboundrules", json={"Rule": "Spammer@Example.net"}, headers=server.headers)
        [blocked] = await received(client, simple(sender="Spammer <spammer@example.net>"), await inbound_address(client, server))
        got = await details(client, server, blocked)
        assert (got["Status"], got["BlockedReason"]) == ("Blocked", "Blocked by the inbound rule 'spammer@example.net'.")
        assert await outbox(client) == []
        bypassed = await client.put(f"/messages/inbound/{blocked}/bypass", headers=server.headers)
        assert bypassed.json() == {"ErrorCode": 0, "Message": f"Successfully bypassed message: {blocked}"}
        assert (await details(client, server, blocked))["Status"] == "Queued"
        [row] = await outbox(client)
        assert row.origin_id == blocked
        again = await client.put(f"/messages/inbound/{blocked}/bypass", json={}, headers=server.headers)
        assert (again.status_code, again.json()["ErrorCode"]) == (422, 702)

    async def test_the_envelope_sender_is_checked_too(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.post("/triggers/inboundrules", json={"Rule": "bulk.example"}, headers=server.headers)
        [message_id] = await received(client, simple(), await inbound_address(client, server), mail_from="bounce-42@mail.bulk.example")
        assert (await details(client, server, message_id))["Status"] == "Blocked"

    async def test_bypass_posts_what_arrival_would_have_for_every_recipient(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put("/server", json={"InboundHookUrl": "https://hooks.example.com/in"}, headers=server.headers)
        await client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)
        a, b, c = [await inbound_address(client, server, h) for h in ("a", "b", "c")]
        [blocked] = await received(client, simple(to=b, headers="Bcc: someone@example.org\r\n"), c, b, a)
        shown = await details(client, server, blocked)
        await client.put(f"/messages/inbound/{blocked}/bypass", headers=server.headers)
        [row] = await outbox(client)
        assert (row.payload["OriginalRecipient"], row.payload["MailboxHash"]) == (c, "c")
        assert [r["Email"] for r in row.payload["BccFull"]] == ["someone@example.org", c, a]
        assert {k: row.payload[k] for k in ("ToFull", "BccFull", "Bcc")} == {k: shown[k] for k in ("ToFull", "BccFull", "Bcc")}

    async def test_bypass_without_a_hook_marks_it_processed(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)
        [message_id] = await received(client, simple(), await inbound_address(client, server))
        assert (await client.put(f"/messages/inbound/{message_id}/bypass", headers=server.headers)).status_code == 200
        assert (await details(client, server, message_id))["Status"] == "Processed"
        assert await outbox(client) == []

    @pytest.mark.parametrize(("threshold", "status"), [(10, "Blocked"), (15, "Processed"), (0, "Processed")])
    async def test_spam_threshold(self, client: httpx.AsyncClient, server: ServerHandle, threshold: int, status: str) -> None:
        await client.put("/server", json={"InboundSpamThreshold": threshold}, headers=server.headers)
        [message_id] = await received(client, simple(headers="X-Spam-Score: 12.5\r\n"), await inbound_address(client, server))
        got = await details(client, server, message_id)
        assert got["Status"] == status
        assert ("12.5" in got["BlockedReason"]) is (status == "Blocked")

    async def test_only_failed_messages_can_be_retried(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        [message_id] = await received(client, simple(), await inbound_address(client, server))
        response = await client.put(f"/messages/inbound/{message_id}/retry", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 703)


class TestInboundRules:
    async def test_create_list_delete(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = (await client.post("/triggers/inboundRules", json={"Rule": " Example.COM "}, headers=server.headers)).json()
        assert created == {"ID": created["ID"], "Rule": "example.com"}
        await client.post("/triggers/inboundrules", json={"Rule": "a@example.org"}, headers=server.headers)
        listed = (await client.get("/triggers/inboundrules?count=1&offset=1", headers=server.headers)).json()
        assert listed == {"TotalCount": 2, "InboundRules": [{"ID": created["ID"] + 1, "Rule": "a@example.org"}]}
        deleted = await client.delete(f"/triggers/inboundrules/{created['ID']}", headers=server.headers)
        assert deleted.json() == {"ErrorCode": 0, "Message": "Rule example.com removed."}
        assert (await client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 1

    @pytest.mark.parametrize(
        ("body", "code"), [({"Rule": "example.com"}, 810), ({"Rule": "not valid"}, 813), ({}, 809), ({"Rule": ""}, 809)]
    )
    async def test_bad_rules(self, client: httpx.AsyncClient, server: ServerHandle, body: dict[str, str], code: int) -> None:
        await client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)
        response = await client.post("/triggers/inboundrules", json=body, headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, code)

    async def test_rules_belong_to_their_server(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_server(client, "Other")
        created = (await client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=other.headers)).json()
        response = await client.delete(f"/triggers/inboundrules/{created['ID']}", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 812)
        assert (await client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0

    async def test_bad_paging_is_800(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/triggers/inboundrules?count=0&offset=0", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 800)


class TestServerSettings:
    async def test_inbound_address_is_at_the_inbound_domain(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = (await client.get("/server", headers=server.headers)).json()
        assert body["InboundAddress"] == f"{body['InboundHash']}@{INBOUND_DOMAIN}"

    async def test_an_inbound_domain_belongs_to_one_server(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert (await client.put("/server", json={"InboundDomain": "replies.example.com"}, headers=server.headers)).status_code == 200
        assert (await client.put("/server", json={"InboundDomain": "replies.example.com"}, headers=server.headers)).status_code == 200
        other = await client.post("/servers", json={"Name": "Other", "InboundDomain": "Replies.Example.com"}, headers=ACCOUNT)
        assert (other.status_code, other.json()["ErrorCode"]) == (422, 602)
