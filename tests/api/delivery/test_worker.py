"""The real worker steps against a real SMTP sink and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from typing import Any

import dkim
import httpx
import pytest
from fastapi import FastAPI

from api_service.bounces.verp import return_path
from api_service.delivery import queue
from tests.api.conftest import Receiver, SinkHandler, Worker
from tests.conftest import ACCOUNT_TOKEN
from tests.factories import ACCOUNT, ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


def sent_from(**overrides: object) -> dict[str, object]:
    return message(From="App <app@example.org>", **overrides)


async def details(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/messages/outbound/{message_id}/details", headers=server.headers)
    body: dict[str, Any] = response.json()
    return body


class TestDelivery:
    async def test_message_arrives_dkim_signed_with_verp_envelope(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        sent = (await client.post("/email", json=sent_from(To="ok@example.net", Bcc="ok2@example.net"), headers=server.headers)).json()
        assert await worker.deliver() == 2
        # One transaction per recipient: each return path is signed for its recipient (bounces.verp).
        by_rcpt = {r.rcpt_tos[0]: r for r in sink[0].received}
        assert sorted(by_rcpt) == ["ok2@example.net", "ok@example.net"]
        assert all(len(r.rcpt_tos) == 1 for r in by_rcpt.values())
        for rcpt, copy in by_rcpt.items():
            path = return_path(
                message_id=uuid.UUID(sent["MessageID"]), recipient=rcpt, domain="bounces.postgate.test", secret=ACCOUNT_TOKEN
            )
            assert copy.mail_from == path
        received = by_rcpt["ok@example.net"]
        assert received.data.startswith(b"DKIM-Signature:")
        domain = (await client.get("/domains?count=1&offset=0", headers=ACCOUNT)).json()["Domains"][0]
        record = (await client.get(f"/domains/{domain['ID']}", headers=ACCOUNT)).json()
        assert record["DKIMHost"].endswith("._domainkey.example.org")

        def dns(name: bytes, timeout: int = 5) -> bytes:
            assert name.decode().rstrip(".") == record["DKIMHost"]
            return str(record["DKIMTextValue"]).encode()

        assert dkim.verify(received.data, dnsfunc=dns)
        got = await details(client, server, sent["MessageID"])
        assert got["Status"] == "Sent"
        events = got["MessageEvents"]
        assert {e["Type"] for e in events} == {"Delivered"}
        assert "250 2.0.0" in events[0]["Details"]["DeliveryMessage"]

    async def test_hard_bounce_is_recorded_signed_webhook_and_406_next_time(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        await client.put("/server", json={"BounceHookUrl": receiver.url}, headers=server.headers)
        sent = (await client.post("/email", json=sent_from(To="hard@example.net"), headers=server.headers)).json()
        await worker.deliver()
        [bounce] = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
        assert bounce["Type"] == "HardBounce"
        assert bounce["MessageID"] == sent["MessageID"]
        assert "550 5.1.1" in bounce["Details"]
        assert bounce["Inactive"] is True
        await worker.hooks()
        [hook] = receiver.hooks
        assert hook.json["RecordType"] == "Bounce"
        assert hook.json["Email"] == "hard@example.net"
        secret = (await client.get("/server", headers=server.headers)).json()["WebhookSecret"]
        expected = (
            "v1=" + hmac.new(secret.encode(), hook.headers["X-Postgate-Timestamp"].encode() + b"." + hook.body, hashlib.sha256).hexdigest()
        )
        assert hook.headers["X-Postgate-Signature"] == expected
        again = await client.post("/email", json=sent_from(To="hard@example.net"), headers=server.headers)
        assert again.status_code == 422
        assert again.json()["ErrorCode"] == 406
        got = await details(client, server, sent["MessageID"])
        assert [e["Type"] for e in got["MessageEvents"]] == ["Bounced"]

    async def test_mailbox_full_is_a_soft_bounce(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
        await client.post("/email", json=sent_from(To="full@example.net"), headers=server.headers)
        await worker.deliver()
        [bounce] = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
        assert bounce["Type"] == "SoftBounce"
        assert bounce["Inactive"] is False

    async def test_temporary_failure_is_retried_then_delivered(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        sent = (await client.post("/email", json=sent_from(To="temp@example.net"), headers=server.headers)).json()
        await worker.deliver()
        assert sink[0].received == []
        got = await details(client, server, sent["MessageID"])
        assert got["Status"] == "Queued"
        assert await worker.deliver() == 1
        assert len(sink[0].received) == 1
        got = await details(client, server, sent["MessageID"])
        assert [e["Type"] for e in got["MessageEvents"]] == ["Transient", "Delivered"]
        assert got["Status"] == "Sent"

    async def test_dropped_connection_is_retried_and_gives_up_after_the_horizon(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker
    ) -> None:
        worker.settings = worker.settings.model_copy(update={"delivery_retry_horizon_seconds": 0.0})
        await client.post("/email", json=sent_from(To="drop@example.net"), headers=server.headers)
        await worker.deliver()
        [bounce] = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
        assert bounce["Type"] == "SoftBounce"

    async def test_killed_worker_lease_expires_and_another_delivers(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await client.post("/email", json=sent_from(To="ok@example.net"), headers=server.headers)
        async with app.state.sessionmaker() as session, session.begin():
            claimed = await queue.claim_due(session=session, limit=10, lease_seconds=1)
        assert len(claimed) == 1  # a worker took it, then died without a word
        assert await worker.deliver() == 0
        await asyncio.sleep(1.2)
        assert await worker.deliver() == 1
        assert len(sink[0].received) == 1

    async def test_sandbox_server_never_delivers(self, client: httpx.AsyncClient, worker: Worker, sink: tuple[SinkHandler, int]) -> None:
        sandbox = await create_server(client, "Sandbox", DeliveryType="Sandbox")
        await create_domain(client, "example.org")
        sent = (await client.post("/email", json=sent_from(To="ok@example.net"), headers=sandbox.headers)).json()
        await worker.deliver()
        assert sink[0].received == []
        got = await details(client, server=sandbox, message_id=sent["MessageID"])
        assert got["Sandboxed"] is True
        assert got["Status"] == "Sent"
        assert [e["Type"] for e in got["MessageEvents"]] == ["Delivered"]


class TestWebhooks:
    async def test_failing_receiver_gets_retries_until_it_answers(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        created = await client.post(
            "/webhooks",
            json={
                "Url": receiver.url,
                "Triggers": {"Delivery": {"Enabled": True}},
                "HttpHeaders": [{"Name": "X-Custom", "Value": "1"}],
                "HttpAuth": {"Username": "u", "Password": "p"},
            },
            headers=server.headers,
        )
        assert created.status_code == 200, created.text
        await client.post("/email", json=sent_from(To="ok@example.net"), headers=server.headers)
        await worker.deliver()
        receiver.statuses.extend([500, 502])
        for _ in range(5):
            await worker.hooks()
        assert len(receiver.hooks) == 3
        assert receiver.hooks[-1].json["RecordType"] == "Delivery"
        assert receiver.hooks[-1].headers["X-Custom"] == "1"
        assert receiver.hooks[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()

    async def test_403_stops_retries(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver) -> None:
        await client.put("/server", json={"DeliveryHookUrl": receiver.url}, headers=server.headers)
        await client.post("/email", json=sent_from(To="ok@example.net"), headers=server.headers)
        await worker.deliver()
        receiver.statuses.extend([403])
        for _ in range(3):
            await worker.hooks()
        assert len(receiver.hooks) == 1

    async def test_webhooks_api(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = (
            await client.post(
                "/webhooks", json={"Url": "https://hooks.example.com/a", "Triggers": {"Bounce": {"Enabled": True}}}, headers=server.headers
            )
        ).json()
        assert created["MessageStream"] == "outbound"
        assert created["Triggers"]["Bounce"] == {"Enabled": True, "IncludeContent": False}
        edited = await client.put(f"/webhooks/{created['ID']}", json={"Triggers": {"Delivery": {"Enabled": True}}}, headers=server.headers)
        assert edited.json()["Triggers"]["Bounce"]["Enabled"] is True
        assert edited.json()["Triggers"]["Delivery"]["Enabled"] is True
        listed = await client.get("/webhooks?MessageStream=outbound", headers=server.headers)
        assert [w["ID"] for w in listed.json()["Webhooks"]] == [created["ID"]]
        bad = await client.post("/webhooks", json={"Url": "nope"}, headers=server.headers)
        assert bad.json()["ErrorCode"] == 1354
        moved = await client.put(f"/webhooks/{created['ID']}", json={"MessageStream": "broadcast"}, headers=server.headers)
        assert moved.json()["ErrorCode"] == 1357
        deleted = await client.delete(f"/webhooks/{created['ID']}", headers=server.headers)
        assert deleted.json() == {"ErrorCode": 0, "Message": f"Webhook {created['ID']} removed."}
        assert (await client.get(f"/webhooks/{created['ID']}", headers=server.headers)).json()["ErrorCode"] == 1352


class TestConcurrentWorkers:
    async def test_two_workers_finishing_one_message_settle_it(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        worker.settings = worker.settings.model_copy(update={"delivery_batch_size": 1})
        sent = (await client.post("/email", json=sent_from(To="ok@example.net", Cc="ok@example.com"), headers=server.headers)).json()
        assert list(await asyncio.gather(worker.deliver(), worker.deliver())) == [1, 1]
        assert len(sink[0].received) == 2
        assert (await details(client, server, sent["MessageID"]))["Status"] == "Sent"
