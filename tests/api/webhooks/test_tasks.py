"""The webhook sender: concurrent requests under a total deadline, a lease that outlasts them, a
fenced final update."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from api_service.models import WebhookDelivery
from api_service.webhooks import repository
from tests.api.conftest import Receiver, Worker
from tests.api.webhooks.conftest import Endpoint, Trickler
from tests.factories import ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


async def delivered_event(client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
    """One message delivered: a Delivery event for each hook of the server."""
    sent = await client.post("/email", json=message(From="app@example.org", To="ok@example.net"), headers=server.headers)
    assert sent.status_code == 200, sent.text
    assert await worker.deliver() == 1


async def outbox(app: FastAPI) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars())


class TestDeadline:
    async def test_receiver_trickling_its_answer_is_cut_at_the_deadline_and_holds_up_no_other(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver, trickler: Trickler
    ) -> None:
        await client.put("/server", json={"DeliveryHookUrl": trickler.url}, headers=server.headers)
        hook = {"Url": receiver.url, "Triggers": {"Delivery": {"Enabled": True}}}
        assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
        await delivered_event(client, server, worker)
        worker.settings = worker.settings.model_copy(update={"webhook_timeout_seconds": 1.0})
        # Far longer than the deadline: what counts is that it ends, with the good receiver served.
        assert await asyncio.wait_for(worker.hooks(), timeout=30) == 2
        assert trickler.connections == 1
        assert [h.json["RecordType"] for h in receiver.hooks] == ["Delivery"]
        rows = {row.url: row for row in await outbox(app)}
        assert rows[receiver.url].status == "delivered"
        assert rows[trickler.url].status == "pending"
        assert rows[trickler.url].last_error == "No answer within 1 s"


class TestLease:
    async def test_event_in_flight_is_not_sent_again_by_another_worker(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, first_endpoint: Endpoint
    ) -> None:
        slow = first_endpoint
        slow.delay = 1.5
        await client.put("/server", json={"DeliveryHookUrl": slow.url}, headers=server.headers)
        await delivered_event(client, server, worker)
        worker.settings = worker.settings.model_copy(update={"webhook_timeout_seconds": 5.0})
        async with app.state.sessionmaker() as session:
            before = (await session.execute(select(WebhookDelivery.next_attempt_at))).scalar_one()
        first = asyncio.create_task(worker.hooks())
        for _ in range(500):
            if (await outbox(app))[0].lease_until is not None:
                break
            await asyncio.sleep(0.01)
        [claimed] = await outbox(app)
        assert claimed.lease_until is not None
        # The lease outlasts the longest a request may take, with room to record its outcome.
        assert (claimed.lease_until - before).total_seconds() > 5.0
        assert await worker.hooks() == 0
        assert await first == 1
        assert len(slow.requests) == 1
        assert (await outbox(app))[0].status == "delivered"

    async def test_attempt_of_a_worker_that_lost_its_lease_is_not_recorded(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        await client.put("/server", json={"DeliveryHookUrl": receiver.url}, headers=server.headers)
        await delivered_event(client, server, worker)
        async with app.state.sessionmaker() as session, session.begin():
            [stale] = await repository.claim_due(session=session, limit=10, lease_seconds=0.1)
        await asyncio.sleep(0.2)
        assert await worker.hooks() == 1  # another worker takes the expired lease and delivers
        async with app.state.sessionmaker() as session, session.begin():
            # The first worker comes back with a failure of its own attempt.
            recorded = await repository.record_attempt(session=session, item=stale, values={"last_status": 500, "status": "failed"})
        assert recorded is False
        [row] = await outbox(app)
        assert (row.status, row.last_status) == ("delivered", 200)
