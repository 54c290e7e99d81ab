"""The delivery queue (delivery.queue, delivery.repository): fenced updates of a claim that lost its
lease, and a claim query that stays on its indexes as delivered rows pile up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from api_service.delivery import queue
from api_service.delivery import repository as queue_repository
from api_service.models import MessageEvent, MessageRecipient
from tests.api.conftest import SinkHandler, Worker
from tests.api.delivery.conftest import send, statuses
from tests.factories import ServerHandle

pytestmark = pytest.mark.asyncio


class TestFencing:
    async def test_worker_that_lost_its_lease_cannot_overwrite_the_new_holder(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await send(client, server, "ok@example.net")
        async with app.state.sessionmaker() as session, session.begin():
            [stale] = await queue.claim_due(session=session, limit=10, lease_seconds=0.1)
        await asyncio.sleep(0.2)
        assert await worker.deliver() == 1  # another worker takes the expired lease and delivers
        async with app.state.sessionmaker() as session, session.begin():
            # The first worker wakes up with a temporary failure for the same recipient.
            deferred = await queue.record_deferred(
                session=session, item=stale, response="451 late", until=datetime.now(UTC), details={"DeliveryMessage": "451 late"}
            )
            held = await queue.extend_leases(session=session, items=[stale], lease_seconds=60)
        assert deferred is False
        assert held == 0
        assert await statuses(app) == ["delivered"]
        async with app.state.sessionmaker() as session:
            events = (await session.execute(select(MessageEvent.type))).scalars().all()
        assert list(events) == ["Delivered"]


class TestRecordDeliveredMany:
    async def test_batched_outcomes_discard_the_one_whose_lease_was_lost(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await send(client, server, "temp-taken@example.net")
        async with app.state.sessionmaker() as session, session.begin():
            [stale] = await queue.claim_due(session=session, limit=10, lease_seconds=0.1)
        await asyncio.sleep(0.2)
        assert await worker.deliver() == 1  # another worker takes the expired lease: greylisted, deferred
        await send(client, server, "mine@example.net")
        await asyncio.sleep(0.01)
        async with app.state.sessionmaker() as session, session.begin():
            mine = [c for c in await queue.claim_due(session=session, limit=10, lease_seconds=60) if c.email == "mine@example.net"]
        async with app.state.sessionmaker() as session, session.begin():
            recorded = await queue.record_delivered_many(
                session=session,
                delivered=[queue.Delivered(item=i, response="250 ok", details={"DeliveryMessage": "250 ok"}) for i in [stale, *mine]],
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
            claim = str(queue_repository.CLAIM).replace(":limit", "100").replace(":lease", "300").replace(":token", "gen_random_uuid()")
            plan = "\n".join(row[0] for row in await conn.execute(text("EXPLAIN " + claim)))
        assert "Seq Scan on message_recipients" not in plan, plan
        assert "ix_message_recipients_due" in plan, plan
        assert "ix_message_recipients_leased" in plan, plan
