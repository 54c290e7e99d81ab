"""Delivery leases: outcomes recorded as each SMTP transaction ends, a heartbeat while a send is in
flight, fenced updates, and a claim query that stays on its indexes as delivered rows pile up."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select, text

from api_service.messages import repository as messages_repository
from api_service.messages import service as messages
from api_service.models import MessageEvent, MessageRecipient
from tests.api.conftest import SinkHandler, Worker
from tests.factories import ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


async def send(client: httpx.AsyncClient, server: ServerHandle, to: str) -> str:
    response = await client.post("/email", json=message(From="app@example.org", To=to), headers=server.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["MessageID"])


async def statuses(app: FastAPI) -> list[str]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(MessageRecipient.status).order_by(MessageRecipient.id))).scalars())


class TestOutcomes:
    async def test_worker_dying_mid_batch_sends_again_only_what_was_in_flight(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        for n in range(10):
            await send(client, server, f"ok{n}@example.net")
        worker.settings = worker.settings.model_copy(update={"delivery_concurrency": 1, "delivery_lease_seconds": 1.0})
        dying = asyncio.create_task(worker.deliver())
        for _ in range(2000):
            if len(sink[0].received) >= 4:
                break
            await asyncio.sleep(0.01)
        dying.cancel()  # the worker dies: nothing after this point runs for it
        with pytest.raises(asyncio.CancelledError):
            await dying
        accepted_before_death = len(sink[0].received)
        recorded = (await statuses(app)).count("delivered")
        # Each message was recorded when its transaction ended, not at the end of the batch.
        assert recorded >= accepted_before_death - 1
        await asyncio.sleep(1.2)  # its leases run out
        while await worker.deliver():
            pass
        delivered = [r.rcpt_tos[0] for r in sink[0].received]
        assert sorted(set(delivered)) == sorted(f"ok{n}@example.net" for n in range(10))
        # At most the one message in flight at the instant of death went out twice.
        assert len(delivered) - 10 <= 1
        assert set(await statuses(app)) == {"delivered"}


class TestHeartbeat:
    async def test_relay_slower_than_the_lease_is_not_sent_twice(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        message_id = await send(client, server, "slow@example.net")
        worker.settings = worker.settings.model_copy(update={"delivery_lease_seconds": 0.6})
        sink[0].slow_seconds = 2.0
        first = asyncio.create_task(worker.deliver())
        await asyncio.sleep(1.3)  # twice the lease: without a heartbeat another worker takes the row
        assert await worker.deliver() == 0
        assert await first == 1
        assert len(sink[0].received) == 1
        async with app.state.sessionmaker() as session:
            events = (await session.execute(select(MessageEvent.type).where(MessageEvent.message_id == uuid.UUID(message_id)))).all()
        assert [e[0] for e in events] == ["Delivered"]


class TestFencing:
    async def test_worker_that_lost_its_lease_cannot_overwrite_the_new_holder(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await send(client, server, "ok@example.net")
        async with app.state.sessionmaker() as session, session.begin():
            [stale] = await messages.claim_due(session=session, limit=10, lease_seconds=0.1)
        await asyncio.sleep(0.2)
        assert await worker.deliver() == 1  # another worker takes the expired lease and delivers
        async with app.state.sessionmaker() as session, session.begin():
            # The first worker wakes up with a temporary failure for the same recipient.
            deferred = await messages.record_deferred(
                session=session, item=stale, response="451 late", until=datetime.now(UTC), details={"DeliveryMessage": "451 late"}
            )
            held = await messages.extend_leases(session=session, items=[stale], lease_seconds=60)
        assert deferred is False
        assert held == 0
        assert await statuses(app) == ["delivered"]
        async with app.state.sessionmaker() as session:
            events = (await session.execute(select(MessageEvent.type))).scalars().all()
        assert list(events) == ["Delivered"]


class TestGroupCommit:
    async def test_concurrent_sends_in_one_worker_record_each_outcome_once(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        for n in range(30):
            await send(client, server, f"r{n}@example.net")
        worker.settings = worker.settings.model_copy(update={"delivery_concurrency": 10, "delivery_batch_size": 30})
        assert await worker.deliver() == 30
        assert sorted(r.rcpt_tos[0] for r in sink[0].received) == sorted(f"r{n}@example.net" for n in range(30))
        assert await statuses(app) == ["delivered"] * 30
        async with app.state.sessionmaker() as session:
            events = (await session.execute(select(MessageEvent.recipient, MessageEvent.type))).all()
            sent = (await session.execute(text("SELECT count(*) FROM messages WHERE status = 'Sent'"))).scalar_one()
        assert sorted((r, t) for r, t in events) == sorted((f"r{n}@example.net", "Delivered") for n in range(30))
        assert sent == 30

    async def test_batched_outcomes_discard_the_one_whose_lease_was_lost(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await send(client, server, "temp-taken@example.net")
        async with app.state.sessionmaker() as session, session.begin():
            [stale] = await messages.claim_due(session=session, limit=10, lease_seconds=0.1)
        await asyncio.sleep(0.2)
        assert await worker.deliver() == 1  # another worker takes the expired lease: greylisted, deferred
        await send(client, server, "mine@example.net")
        await asyncio.sleep(0.01)
        async with app.state.sessionmaker() as session, session.begin():
            mine = [c for c in await messages.claim_due(session=session, limit=10, lease_seconds=60) if c.email == "mine@example.net"]
        async with app.state.sessionmaker() as session, session.begin():
            recorded = await messages.record_delivered_many(
                session=session,
                delivered=[messages.Delivered(item=i, response="250 ok", details={"DeliveryMessage": "250 ok"}) for i in [stale, *mine]],
                at=datetime.now(UTC),
            )
        assert [d.item.email for d in recorded] == ["mine@example.net"]
        async with app.state.sessionmaker() as session:
            rows = dict((await session.execute(select(MessageRecipient.email, MessageRecipient.status))).all())
            events = [(r, t) for r, t in (await session.execute(select(MessageEvent.recipient, MessageEvent.type))).all()]
        # The stale claim's write was discarded: the row is the new holder's (deferred, or claimed again).
        assert rows["mine@example.net"] == "delivered"
        assert rows["temp-taken@example.net"] in {"deferred", "sending"}
        assert sorted(events) == [("mine@example.net", "Delivered"), ("temp-taken@example.net", "Transient")]


class TestClaimQuery:
    async def test_claim_stays_on_its_indexes_with_100k_delivered_rows(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        message_id = await send(client, server, "ok@example.net")
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO message_recipients (message_id, email, kind, status, attempts, last_response, delivered_at, created_at)
                    SELECT CAST(:mid AS uuid), 'r' || g || '@example.net', 'to', 'delivered', 1, '250 ok', now(), now()
                      FROM generate_series(1, 100000) AS g
                    """
                ),
                {"mid": message_id},
            )
            await conn.execute(text("ANALYZE message_recipients"))
            claim = str(messages_repository.CLAIM).replace(":limit", "100").replace(":lease", "300").replace(":token", "gen_random_uuid()")
            plan = "\n".join(row[0] for row in await conn.execute(text("EXPLAIN " + claim)))
        assert "Seq Scan on message_recipients" not in plan, plan
        assert "ix_message_recipients_due" in plan, plan
        assert "ix_message_recipients_leased" in plan, plan
