"""Scheduled sending (beyond Postmark): `SendAt` on the send endpoints and `X-PM-Send-At` over SMTP hold a message
in the delivery queue until its time; `DELETE`/`PUT /messages/outbound/{id}/schedule` cancel or move it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import update

from api_service.delivery import queue
from api_service.delivery.service import deliver_batch
from api_service.messages import service as messages
from api_service.models import Message
from api_service.worker import _loop
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.api.conftest import SinkHandler, Worker
from tests.api.delivery.conftest import statuses
from tests.factories import INTERNAL, ServerHandle, message

pytestmark = pytest.mark.asyncio


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def scheduled(seconds: float, **overrides: Any) -> dict[str, Any]:
    return message(**({"From": "app@example.org", "To": "ok@example.net", "SendAt": at(seconds)} | overrides))


async def details(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/messages/outbound/{message_id}/details", headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def schedule(client: httpx.AsyncClient, server: ServerHandle, seconds: float) -> str:
    response = await client.post("/email", json=scheduled(seconds), headers=server.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["MessageID"])


class TestAccepting:
    async def test_future_send_at_is_accepted_and_shown_scheduled(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        response = await client.post(
            "/email", json=scheduled(0, SendAt=send_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")), headers=server.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ErrorCode"] == 0
        assert body["SendAt"] == send_at.isoformat().replace("+00:00", "Z")
        got = await details(client, server, body["MessageID"])
        assert got["Status"] == "Scheduled"
        assert got["SendAt"] == body["SendAt"]
        listed = (await client.get("/messages/outbound?count=10&offset=0&status=scheduled", headers=server.headers)).json()
        assert [m["MessageID"] for m in listed["Messages"]] == [body["MessageID"]]

    async def test_send_at_with_another_offset_means_the_same_instant(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        local = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0).astimezone(timezone(timedelta(hours=-5)))
        body = (await client.post("/email", json=scheduled(0, SendAt=local.isoformat()), headers=server.headers)).json()
        assert body["SendAt"] == local.astimezone(UTC).isoformat().replace("+00:00", "Z")

    async def test_past_send_at_sends_now(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
        message_id = await schedule(client, server, -60)
        assert (await details(client, server, message_id))["Status"] == "Queued"
        assert await worker.deliver() == 1

    @pytest.mark.parametrize(
        ("send_at", "words"),
        [
            ((datetime.now(UTC) + timedelta(days=31)).isoformat(), "30 days"),
            ("2030-01-02T09:00:00", "offset"),
            ("next tuesday", "ISO 8601"),
        ],
    )
    async def test_bad_send_at_is_refused_with_300(self, client: httpx.AsyncClient, server: ServerHandle, send_at: str, words: str) -> None:
        response = await client.post("/email", json=scheduled(0, SendAt=send_at), headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert words in response.json()["Message"]

    async def test_batch_answers_per_item(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        items = [scheduled(3600), scheduled(0, SendAt=at(40 * 86400)), message(From="app@example.org", To="now@example.net")]
        results = (await client.post("/email/batch", json=items, headers=server.headers)).json()
        assert [r["ErrorCode"] for r in results] == [0, 300, 0]
        assert "SendAt" in results[0]
        assert "SendAt" not in results[2]
        assert (await details(client, server, results[0]["MessageID"]))["Status"] == "Scheduled"
        assert (await details(client, server, results[2]["MessageID"]))["Status"] == "Queued"

    async def test_with_template(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        template = {"Name": "Hi", "Alias": "hi", "Subject": "Hi {{name}}", "TextBody": "Hello {{name}}"}
        assert (await client.post("/templates", json=template, headers=server.headers)).status_code == 200
        body = {"From": "app@example.org", "To": "ok@example.net", "TemplateAlias": "hi", "TemplateModel": {"name": "A"}}
        one = (await client.post("/email/withTemplate", json=body | {"SendAt": at(600)}, headers=server.headers)).json()
        assert (await details(client, server, one["MessageID"]))["Status"] == "Scheduled"
        many = (
            await client.post("/email/batchWithTemplates", json={"Messages": [body | {"SendAt": at(600)}, body]}, headers=server.headers)
        ).json()
        assert ["SendAt" in r for r in many] == [True, False]

    async def test_idempotency_key_retry_returns_the_first_answer(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = scheduled(600)
        headers = server.headers | {"Idempotency-Key": "sched-1"}
        first = (await client.post("/email", json=body, headers=headers)).json()
        again = (await client.post("/email", json=body, headers=headers)).json()
        assert again == first
        listed = (await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)).json()
        assert listed["TotalCount"] == 1

    async def test_smtp_header_is_honoured_and_removed(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        raw = (f"From: app@example.org\r\nTo: ok@example.net\r\nSubject: later\r\nX-PM-Send-At: {at(1.0)}\r\n\r\nbody\r\n").encode()
        await client.put("/server", json={"SmtpApiActivated": True}, headers=server.headers)
        submission = {"MailFrom": "app@example.org", "RcptTo": ["ok@example.net"], "RawMessage": base64.b64encode(raw).decode()}
        response = await client.post(SMTP_SUBMIT_PATH, json=submission, headers=server.headers | INTERNAL)
        assert response.status_code == 200, response.text
        assert await worker.deliver() == 0
        await asyncio.sleep(1.1)
        assert await worker.deliver() == 1
        [received] = sink[0].received
        assert b"x-pm-send-at" not in received.data.lower()


class TestCancelAndReschedule:
    async def test_cancelled_message_never_leaves(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        message_id = await schedule(client, server, 0.5)
        response = await client.delete(f"/messages/outbound/{message_id}/schedule", headers=server.headers)
        assert response.status_code == 200, response.text
        assert response.json()["Status"] == "Cancelled"
        await asyncio.sleep(0.6)
        assert await worker.deliver() == 0
        assert sink[0].received == []
        assert (await details(client, server, message_id))["Status"] == "Cancelled"
        again = await client.delete(f"/messages/outbound/{message_id}/schedule", headers=server.headers)
        assert again.status_code == 422
        assert again.json()["ErrorCode"] == 300

    async def test_released_message_cannot_be_cancelled(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
        message_id = await schedule(client, server, -1)
        await worker.deliver()
        response = await client.delete(f"/messages/outbound/{message_id}/schedule", headers=server.headers)
        assert response.status_code == 422
        assert "Sent" in response.json()["Message"]

    async def test_unknown_message_is_701(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.delete(f"/messages/outbound/{uuid.uuid4()}/schedule", headers=server.headers)
        assert response.status_code == 404
        assert response.json()["ErrorCode"] == 701

    async def test_reschedule_moves_the_release(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
        message_id = await schedule(client, server, 3600)
        assert await worker.deliver() == 0
        later = await client.put(f"/messages/outbound/{message_id}/schedule", json={"SendAt": at(7200)}, headers=server.headers)
        assert later.status_code == 200, later.text
        assert (await details(client, server, message_id))["SendAt"] == later.json()["SendAt"]
        too_far = await client.put(f"/messages/outbound/{message_id}/schedule", json={"SendAt": at(31 * 86400)}, headers=server.headers)
        assert too_far.json()["ErrorCode"] == 300
        now = await client.put(f"/messages/outbound/{message_id}/schedule", json={"SendAt": at(-5)}, headers=server.headers)
        assert now.status_code == 200
        assert await worker.deliver() == 1
        assert (await details(client, server, message_id))["Status"] == "Sent"

    async def test_retries_count_from_the_release_not_the_acceptance(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker
    ) -> None:
        worker.settings = worker.settings.model_copy(update={"delivery_retry_horizon_seconds": 600.0})
        response = await client.post("/email", json=scheduled(3600, To="temp@example.net"), headers=server.headers)
        message_id = response.json()["MessageID"]
        async with app.state.sessionmaker() as session, session.begin():  # accepted long ago, released now
            await session.execute(update(Message).values(created_at=datetime.now(UTC) - timedelta(days=2)))
        assert (
            await client.put(f"/messages/outbound/{message_id}/schedule", json={"SendAt": at(-1)}, headers=server.headers)
        ).status_code == 200
        assert await worker.deliver() == 1  # greylisted: 451 once, retried (the horizon counts from SendAt)
        assert await statuses(app) == ["deferred"]
        assert await worker.deliver() == 1
        assert await statuses(app) == ["delivered"]


class TestRace:
    """A cancel and a release of the same message: exactly one of them happens, whichever locks first."""

    async def test_release_first_cancel_waits_and_is_refused(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await schedule(client, server, 0.2)
        await asyncio.sleep(0.3)
        async with app.state.sessionmaker() as claim_session, claim_session.begin():
            claimed = await queue.claim_due(session=claim_session, limit=10, lease_seconds=30)
            assert len(claimed) == 1
            cancel = asyncio.create_task(client.delete(f"/messages/outbound/{message_id}/schedule", headers=server.headers))
            await asyncio.sleep(0.3)
            assert not cancel.done()  # waiting for the claim's row lock
        response = await cancel
        assert response.status_code == 422
        assert await statuses(app) == ["sending"]

    async def test_cancel_first_release_skips_it(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await schedule(client, server, 0.2)
        await asyncio.sleep(0.3)
        async with app.state.sessionmaker() as cancel_session, cancel_session.begin():
            row = await messages.get_message_or_raise(session=cancel_session, server_id=server.id, message_id=message_id)
            await queue.cancel_scheduled(session=cancel_session, message=row)
            async with app.state.sessionmaker() as claim_session, claim_session.begin():
                assert await queue.claim_due(session=claim_session, limit=10, lease_seconds=30) == []
        async with app.state.sessionmaker() as claim_session, claim_session.begin():
            assert await queue.claim_due(session=claim_session, limit=10, lease_seconds=30) == []
        assert await statuses(app) == []
        assert (await details(client, server, message_id))["Status"] == "Cancelled"


@pytest_asyncio.fixture
async def running(app: FastAPI, worker: Worker) -> AsyncIterator[list[asyncio.Event]]:
    """The worker's real delivery loop (its `_loop` and `deliver_batch`, polling as in production), started and
    stopped by the test through the returned list (each `start` appends the stop event of a new loop)."""
    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []
    settings = worker.settings.model_copy(update={"worker_poll_seconds": 0.5})

    def start() -> None:
        stop = asyncio.Event()
        stops.append(stop)
        step = lambda: deliver_batch(sessionmaker=app.state.sessionmaker, transport=worker.transport, settings=settings)  # noqa: E731
        tasks.append(asyncio.create_task(_loop("delivery", step, stop=stop, idle=settings.worker_poll_seconds)))

    app.state.start_worker = start
    yield stops
    for stop in stops:
        stop.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)


async def wait_for(sink: SinkHandler, count: int, *, seconds: float) -> float:
    """Seconds until the sink holds `count` messages (or `seconds`, when it never does)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(int(seconds / 0.05)):
        if len(sink.received) >= count:
            break
        await asyncio.sleep(0.05)
    return loop.time() - started


@pytest.mark.slow
class TestRealWorker:
    async def test_released_on_time_not_before(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        running: list[asyncio.Event],
        sink: tuple[SinkHandler, int],
    ) -> None:
        app.state.start_worker()
        sent_at = datetime.now(UTC)
        message_id = await schedule(client, server, 3.0)
        cancelled = await schedule(client, server, 3.0)
        assert (await client.delete(f"/messages/outbound/{cancelled}/schedule", headers=server.headers)).status_code == 200
        await asyncio.sleep(2.0)
        assert sink[0].received == []
        assert (await details(client, server, message_id))["Status"] == "Scheduled"
        await wait_for(sink[0], 1, seconds=4.0)
        elapsed = (datetime.now(UTC) - sent_at).total_seconds()
        assert len(sink[0].received) == 1
        assert 3.0 <= elapsed <= 4.5
        await asyncio.sleep(0.5)
        assert len(sink[0].received) == 1  # the cancelled one never leaves
        got = await details(client, server, message_id)
        assert got["Status"] == "Sent"

    async def test_released_after_a_worker_restart(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        running: list[asyncio.Event],
        sink: tuple[SinkHandler, int],
    ) -> None:
        app.state.start_worker()
        await schedule(client, server, 1.5)
        running[0].set()  # the worker stops before the message is due
        await asyncio.sleep(2.0)
        assert sink[0].received == []
        app.state.start_worker()  # a new worker finds it due and sends it at once
        assert await wait_for(sink[0], 1, seconds=3.0) < 1.5
        assert len(sink[0].received) == 1

    async def test_released_on_time_behind_a_backlog(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        running: list[asyncio.Event],
        sink: tuple[SinkHandler, int],
    ) -> None:
        """Under load: a scheduled message due while the worker drains other mail is not held back past it."""
        batch = [message(From="app@example.org", To=f"ok{i}@example.net") for i in range(40)]
        sent_at = datetime.now(UTC)
        scheduled_id = await schedule(client, server, 2.0)
        assert (await client.post("/email/batch", json=batch, headers=server.headers)).status_code == 200
        app.state.start_worker()
        await wait_for(sink[0], 41, seconds=8.0)
        arrived = {r.rcpt_tos[0]: r for r in sink[0].received}
        assert len(arrived) == 41
        got = await details(client, server, scheduled_id)
        delivered = datetime.fromisoformat(next(e for e in got["MessageEvents"] if e["Type"] == "Delivered")["ReceivedAt"])
        assert 2.0 <= (delivered - sent_at).total_seconds() <= 5.0
