"""Grouped single sends over real HTTP: many concurrent clients of one uvicorn process share transactions,
and each still gets its own answer, after its own message is committed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api_service.config import Settings
from api_service.db import async_database_url
from api_service.main import create_app
from api_service.models import Base
from tests.factories import ServerHandle, create_sender, create_server, message

# no_cover: these tests need requests to meet at the commit; coverage's tracing slows the handlers
# enough that they arrive one by one and no group forms (make test measures coverage).
pytestmark = [pytest.mark.asyncio, pytest.mark.no_cover]

SUPPRESSIONS = "/message-streams/outbound/suppressions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live_url(settings: Settings) -> Iterator[str]:
    """The API in uvicorn on a loopback port. A 50 ms gathering window makes the requests of one burst
    share a transaction on any machine, however slow."""
    port = free_port()
    app = create_app(settings.model_copy(update={"email_group_window_ms": 50, "email_group_writers": 2}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_database_url(database_url))
    yield engine
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest_asyncio.fixture
async def live(live_url: str, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=60) as client:
        yield client


async def stored(engine: AsyncEngine, server: ServerHandle) -> dict[str, str]:
    """Message id → the id of the transaction that wrote it, for one server's messages."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id::text, xmin::text FROM messages WHERE server_id = :s"), {"s": server.id})
        return {row[0]: row[1] for row in rows}


async def send_all(client: httpx.AsyncClient, sends: list[tuple[ServerHandle, dict[str, Any]]]) -> list[httpx.Response]:
    return await asyncio.gather(*(client.post("/email", json=body, headers=server.headers) for server, body in sends))


class TestGroupedSends:
    async def test_each_concurrent_client_gets_its_own_answer_and_good_messages_are_stored_once(
        self, live: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        first = await create_server(live, "First")
        second = await create_server(live, "Second")
        await create_sender(live)
        added = await live.post(SUPPRESSIONS, json={"Suppressions": [{"EmailAddress": "quiet@example.net"}]}, headers=first.headers)
        assert added.status_code == 200, added.text
        kinds: dict[str, tuple[int, int]] = {
            "good": (200, 0),
            "no signature": (422, 400),
            "inactive": (422, 406),
            "bad stream": (422, 1235),
        }
        bodies: dict[str, dict[str, Any]] = {
            "good": message(),
            "no signature": message(From="stranger@unknown.example"),
            "inactive": message(To="quiet@example.net"),
            "bad stream": message(MessageStream="no-such-stream"),
        }
        # 60 clients at once, both servers interleaved; the second server has no suppression, so its
        # "inactive" message is good.
        plan = [(name, first if i % 2 else second) for i in range(15) for name in kinds]
        responses = await send_all(live, [(server, bodies[name] | {"Subject": f"{name} {i}"}) for i, (name, server) in enumerate(plan)])

        for (name, server), response in zip(plan, responses, strict=True):
            status, code = (200, 0) if name == "inactive" and server is second else kinds[name]
            assert response.status_code == status, (name, response.text)
            assert response.json()["ErrorCode"] == code, (name, response.text)
        accepted = {
            server.id: [r.json()["MessageID"] for (_, s), r in zip(plan, responses, strict=True) if s is server and r.status_code == 200]
            for server in (first, second)
        }
        for server in (first, second):
            rows = await stored(engine, server)
            assert sorted(rows) == sorted(accepted[server.id])  # every 200 stored, exactly once; nothing else
            # Shared transactions: fewer transactions wrote the rows than there are rows.
            assert len(set(rows.values())) < len(rows)

    async def test_a_failing_commit_answers_its_whole_group_with_500_never_200(self, live: httpx.AsyncClient, engine: AsyncEngine) -> None:
        server = await create_server(live)
        await create_sender(live)
        # A deferred constraint trigger makes PostgreSQL refuse the COMMIT of any transaction holding a "refuse" message.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN IF NEW.subject = 'refuse' THEN RAISE EXCEPTION 'commit refused by test'; END IF; RETURN NULL; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON messages "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()"
                )
            )
        try:
            subjects = ["refuse" if i == 0 else f"fine {i}" for i in range(30)]
            responses = await send_all(live, [(server, message(Subject=s)) for s in subjects])
        finally:
            async with engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER refuse_commit ON messages"))
                await conn.execute(text("DROP FUNCTION refuse_commit()"))

        assert responses[0].status_code == 500
        assert responses[0].json()["ErrorCode"] == 101
        assert {r.status_code for r in responses} <= {200, 500}
        refused = [r for r in responses if r.status_code == 500]
        assert len(refused) > 1  # the refused message's neighbours in its transaction are refused with it
        rows = await stored(engine, server)
        assert sorted(rows) == sorted(r.json()["MessageID"] for r in responses if r.status_code == 200)

    async def test_idempotent_sends_still_replay_their_first_answer(self, live: httpx.AsyncClient) -> None:
        server = await create_server(live)
        await create_sender(live)
        headers = server.headers | {"Idempotency-Key": "order-42"}
        first, again = await asyncio.gather(*(live.post("/email", json=message(), headers=headers) for _ in range(2)))
        answers = sorted([first, again], key=lambda r: r.status_code)
        assert answers[0].status_code == 200, answers[0].text
        # The second is either the replay of the first or told to retry while the first is in flight.
        assert answers[1].status_code in (200, 409)
        if answers[1].status_code == 200:
            assert answers[1].json()["MessageID"] == answers[0].json()["MessageID"]
