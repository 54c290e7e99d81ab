"""Posting received mail to InboundHookUrl: the worker's webhook step against a real HTTP receiver,
on the fast test schedule (two retries, no waiting)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from api_service.config import Settings
from api_service.inbound.service import INBOUND_RECORD_TYPE, retry_schedule
from api_service.models import WebhookDelivery
from api_service.webhooks import service as webhooks_service
from tests.api.conftest import Receiver, Worker
from tests.api.inbound.conftest import FIXTURES, details, fixture, inbound_address, received, simple
from tests.factories import ServerHandle, create_server

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient, receiver: Receiver) -> ServerHandle:
    return await create_server(client, "Support", InboundHookUrl=receiver.url)


async def run_hooks(worker: Worker, times: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(times):
            await worker.hooks(http)


class TestPosting:
    async def test_the_hook_gets_postmarks_json_signed_and_the_message_is_processed(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        address = await inbound_address(client, server, "ticket42")
        [message_id] = await received(client, fixture("inline_image_and_pdf.eml"), address)
        await run_hooks(worker)
        [hook] = receiver.hooks
        payload = hook.json
        assert (payload["MessageID"], payload["MailboxHash"], payload["OriginalRecipient"]) == (message_id, "ticket42", address)
        assert "RecordType" not in payload
        logo, pdf = payload["Attachments"]
        assert base64.b64decode(logo["Content"]) == (FIXTURES / "logo.png").read_bytes()
        assert base64.b64decode(pdf["Content"]) == (FIXTURES / "invoice.pdf").read_bytes()
        secret = (await client.get("/server", headers=server.headers)).json()["WebhookSecret"]
        signed = hook.headers["X-Postgate-Timestamp"].encode() + b"." + hook.body
        assert hook.headers["X-Postgate-Signature"] == "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        assert (await details(client, server, message_id))["Status"] == "Processed"

    async def test_a_failing_hook_is_retried_then_the_message_fails_with_an_inbound_error_bounce(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        [message_id] = await received(client, simple(subject="Ticket"), await inbound_address(client, server))
        receiver.statuses.extend([500, 502])
        await run_hooks(worker)
        assert (await details(client, server, message_id))["Status"] == "Scheduled"
        receiver.statuses.append(503)
        await run_hooks(worker, times=4)
        assert len(receiver.hooks) == 3
        assert len({h.headers["X-PM-Webhook-Trace-Id"] for h in receiver.hooks}) == 1
        assert (await details(client, server, message_id))["Status"] == "Failed"
        [bounce] = (await client.get("/bounces?count=10&offset=0&messagestream=inbound", headers=server.headers)).json()["Bounces"]
        assert (bounce["Type"], bounce["TypeCode"], bounce["Name"]) == ("InboundError", 100008, "Processing failed")
        assert message_id in bounce["Details"]
        assert "HTTP 503" in bounce["Details"]
        assert (bounce["Email"], bounce["From"], bounce["Subject"], bounce["Inactive"]) == (
            await inbound_address(client, server),
            "ann@example.com",
            "Ticket",
            False,
        )
        dump = (await client.get(f"/bounces/{bounce['ID']}/dump", headers=server.headers)).json()["Body"]
        assert "Subject: Ticket" in dump

        retried = await client.put(f"/messages/inbound/{message_id}/retry", headers=server.headers)
        assert retried.json() == {"ErrorCode": 0, "Message": f"Successfully rescheduled failed message: {message_id}"}
        assert (await details(client, server, message_id))["Status"] == "Queued"
        await run_hooks(worker)
        assert len(receiver.hooks) == 4
        assert receiver.hooks[-1].json["MessageID"] == message_id
        assert (await details(client, server, message_id))["Status"] == "Processed"

    async def test_403_stops_at_once(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver) -> None:
        [message_id] = await received(client, simple(), await inbound_address(client, server))
        receiver.statuses.append(403)
        await run_hooks(worker, times=3)
        assert len(receiver.hooks) == 1
        assert (await details(client, server, message_id))["Status"] == "Failed"
        [bounce] = (await client.get("/bounces?count=10&offset=0&messagestream=inbound", headers=server.headers)).json()["Bounces"]
        assert "HTTP 403" in bounce["Details"]

    async def test_an_unreachable_hook_fails_like_an_error_answer(
        self, client: httpx.AsyncClient, worker: Worker, settings: Settings
    ) -> None:
        server = await create_server(client, "Nowhere", InboundHookUrl="http://127.0.0.1:9/hook")
        [message_id] = await received(client, simple(), await inbound_address(client, server))
        await run_hooks(worker, times=3)
        assert (await details(client, server, message_id))["Status"] == "Failed"
        [bounce] = (await client.get("/bounces?count=10&offset=0&messagestream=inbound", headers=server.headers)).json()["Bounces"]
        assert "could not be reached" in bounce["Details"]

    async def test_a_blocked_message_is_not_posted_until_bypassed(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        await client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)
        [blocked] = await received(client, simple(), await inbound_address(client, server))
        await run_hooks(worker)
        assert receiver.hooks == []
        await client.put(f"/messages/inbound/{blocked}/bypass", headers=server.headers)
        await run_hooks(worker)
        [hook] = receiver.hooks
        assert hook.json["MessageID"] == blocked
        assert (await details(client, server, blocked))["Status"] == "Processed"


class TestSchedule:
    async def test_the_default_is_postmarks_inbound_schedule(self) -> None:
        schedule = retry_schedule(Settings())
        assert len(schedule) == 10
        assert schedule[:3] == [60, 300, 600]
        assert 10 * 3600 <= sum(schedule) <= 11 * 3600

    async def test_a_rows_own_schedule_replaces_the_workers(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        sessionmaker = worker.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            await webhooks_service.enqueue_post(
                session=session,
                server_id=server.id,
                record_type="Other",
                url=receiver.url,
                payload=webhooks_service.sample_payload(trigger="Delivery", server_id=server.id, stream="outbound"),
                retry_schedule=[3600.0],
            )
        receiver.statuses.append(500)
        before = datetime.now(UTC)
        await run_hooks(worker, times=2)
        assert len(receiver.hooks) == 1
        async with sessionmaker() as session:
            [row] = (await session.execute(select(WebhookDelivery))).scalars().all()
        assert row.status == "pending"
        assert row.next_attempt_at >= before + timedelta(seconds=3000)
        assert row.record_type != INBOUND_RECORD_TYPE


class TestAttempts:
    async def test_the_posts_about_a_message_are_listed_newest_first_with_their_outcome(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        [message_id] = await received(client, simple(), await inbound_address(client, server))
        receiver.statuses.append(403)
        await run_hooks(worker)
        await client.put(f"/messages/inbound/{message_id}/retry", headers=server.headers)
        [other] = await received(client, simple(subject="Other"), await inbound_address(client, server))
        await run_hooks(worker)
        async with worker.app.state.sessionmaker() as session:
            rows = await webhooks_service.deliveries_about(
                session=session, server_id=server.id, record_type=INBOUND_RECORD_TYPE, origin_id=message_id
            )
            others = await webhooks_service.deliveries_about(session=session, server_id=server.id, record_type="Other", origin_id=other)
        assert [(r.status, r.last_status, r.attempts) for r in rows] == [("delivered", 200, 1), ("failed", 403, 1)]
        assert others == []
