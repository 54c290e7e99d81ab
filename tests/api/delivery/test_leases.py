"""Delivery leases in the worker: outcomes recorded as each SMTP transaction ends, a heartbeat while
a send is in flight, and group-committed outcomes (the queue's own fencing and claim query are in
test_queue.py)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from api_service.models import MessageEvent
from tests.api.conftest import SinkHandler, Worker
from tests.api.delivery.conftest import send, statuses
from tests.factories import ServerHandle

pytestmark = pytest.mark.asyncio


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
