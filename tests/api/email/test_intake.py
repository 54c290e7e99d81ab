"""Intake's unit of work and its failure contract (`api_service.email.intake`), over real HTTP to one
uvicorn process: concurrent single sends share transactions and each still gets its own answer after
its own message is committed; a refused message gets its ErrorCode, a neighbour that cannot be stored
sinks nobody else (REST and SMTP alike), and a COMMIT that fails answers its whole group with 500."""

from __future__ import annotations

import asyncio
import json
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
from shared.schemas.smtp import SMTP_BATCH_CONTENT_TYPE, SMTP_BATCH_PATH, SmtpBatchEnvelope, SmtpBatchMessage, encode_smtp_batch
from tests.factories import INTERNAL, ServerHandle, create_sender, create_server, message

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


@pytest_asyncio.fixture
async def poison(engine: AsyncEngine) -> AsyncIterator[None]:
    """A message with the subject 'poison' cannot be stored: the INSERT that holds it fails."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'poison refused by test'; END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_poison ON messages"))
            await conn.execute(text("DROP FUNCTION refuse_poison()"))


def smtp_batch(server: ServerHandle, subjects: list[str]) -> bytes:
    batch = []
    for subject in subjects:
        raw = f"From: sender@example.com\r\nTo: a@example.net\r\nSubject: {subject}\r\n\r\nHello\r\n".encode()
        envelope = SmtpBatchEnvelope(Token=server.token, MailFrom="sender@example.com", RcptTo=["a@example.net"], Size=len(raw))
        batch.append(SmtpBatchMessage(envelope=envelope, raw=raw))
    return encode_smtp_batch(batch)


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
        # Its neighbours in the refused transaction get 500 with it; how many shared it depends on
        # timing (on a loaded machine it may have committed alone), so what is asserted is the
        # promise: every 200 is stored, nothing answered 500 is.
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

    @pytest.mark.usefixtures("poison")
    async def test_a_neighbour_that_cannot_be_stored_sinks_nobody_else(self, live: httpx.AsyncClient, engine: AsyncEngine) -> None:
        server = await create_server(live)
        await create_sender(live)
        subjects = ["poison" if i == 3 else f"fine {i}" for i in range(20)]
        responses = await send_all(live, [(server, message(Subject=s)) for s in subjects])
        assert responses[3].status_code == 500
        assert responses[3].json()["ErrorCode"] == 101
        assert all(r.status_code == 200 for i, r in enumerate(responses) if i != 3)
        rows = await stored(engine, server)
        assert sorted(rows) == sorted(r.json()["MessageID"] for i, r in enumerate(responses) if i != 3)
        # (Whether the neighbours shared a transaction cannot be read from xmin here: a member written in
        # the fallback's savepoint carries its subtransaction's id, not its group's.)

    async def test_lone_surrogates_are_refused_alone_and_their_neighbours_stored(
        self, live: httpx.AsyncClient, engine: AsyncEngine
    ) -> None:
        """The fault run: valid sends and sends holding "\\ud800" (in a Subject, a Metadata value, a display
        name) at once. Each bad one gets its own 422 naming the field; every valid one gets 200 and is stored."""
        server = await create_server(live)
        await create_sender(live)
        bad = {
            5: message(Subject="caf\ud800"),
            17: message(Metadata={"k": "\ud800"}),
            29: message(To='"\ud800" <ann@example.net>'),
        }
        bodies = [bad.get(i, message(Subject=f"fine {i}")) for i in range(33)]
        headers = server.headers | {"Content-Type": "application/json"}
        # Escaped as any JSON encoder does ("\\ud800"); httpx's own encoder would refuse to write it.
        responses = await asyncio.gather(*(live.post("/email", content=json.dumps(b).encode(), headers=headers) for b in bodies))
        for i, response in enumerate(responses):
            if i in bad:
                assert (response.status_code, response.json()["ErrorCode"]) == (422, 300), response.text
            else:
                assert response.status_code == 200, (i, response.text)
        assert {r.json()["Message"].split("'")[1] for i, r in enumerate(responses) if i in bad} == {"Subject", "Metadata.k", "To"}
        rows = await stored(engine, server)
        assert sorted(rows) == sorted(r.json()["MessageID"] for i, r in enumerate(responses) if i not in bad)

    async def test_an_smtp_header_that_decodes_to_a_surrogate_is_bounced_alone(self, live: httpx.AsyncClient, engine: AsyncEngine) -> None:
        server = await create_server(live, SmtpApiActivated=True)
        await create_sender(live)
        # An encoded word in Python's unicode_escape codec decodes to a lone surrogate.
        body = smtp_batch(server, ["fine 1", "=?unicode_escape?q?=5Cud800?=", "fine 2"])
        response = await live.post(SMTP_BATCH_PATH, content=body, headers={"Content-Type": SMTP_BATCH_CONTENT_TYPE} | INTERNAL)
        assert response.status_code == 200, response.text
        outcomes = response.json()["Outcomes"]
        # Accepted (250) and stored as an SMTPApiError bounce of its own, as Postmark reports a bad SMTP message.
        assert [o["Status"] for o in outcomes] == [200, 200, 200]
        rows = await stored(engine, server)
        assert sorted(rows) == sorted(o["Result"]["MessageID"] for o in outcomes)
        async with engine.connect() as conn:
            bounced = (await conn.execute(text("SELECT type, details FROM bounces WHERE server_id = :s"), {"s": server.id})).all()
        assert [b[0] for b in bounced] == ["SMTPApiError"]
        assert "Subject" in bounced[0][1]

    @pytest.mark.usefixtures("poison")
    async def test_an_smtp_message_that_cannot_be_stored_is_its_own_451(self, live: httpx.AsyncClient, engine: AsyncEngine) -> None:
        server = await create_server(live, SmtpApiActivated=True)
        await create_sender(live)
        body = smtp_batch(server, ["fine 1", "poison", "fine 2"])
        response = await live.post(SMTP_BATCH_PATH, content=body, headers={"Content-Type": SMTP_BATCH_CONTENT_TYPE} | INTERNAL)
        assert response.status_code == 200, response.text
        outcomes = response.json()["Outcomes"]
        assert [o["Status"] for o in outcomes] == [200, 503, 200]  # the gateway answers 250, 451, 250
        rows = await stored(engine, server)
        assert sorted(rows) == sorted(o["Result"]["MessageID"] for o in outcomes if o["Status"] == 200)
        again = await live.post(SMTP_BATCH_PATH, content=body, headers={"Content-Type": SMTP_BATCH_CONTENT_TYPE} | INTERNAL)
        replayed = again.json()["Outcomes"]
        # The stored ones are recognised as retries; the failed one left no key behind (it fails again, alone).
        assert [o["Status"] for o in replayed] == [200, 503, 200]
        assert [o["Result"]["Duplicate"] for o in (replayed[0], replayed[2])] == [True, True]

    async def test_a_refused_send_in_a_group_leaves_its_idempotency_key_free(self, live: httpx.AsyncClient) -> None:
        server = await create_server(live)
        await create_sender(live)
        keyed = server.headers | {"Idempotency-Key": "refused-then-fixed"}
        refused, *others = await asyncio.gather(
            live.post("/email", json=message(From="stranger@unknown.example"), headers=keyed),
            *(live.post("/email", json=message(Subject=f"fine {i}"), headers=server.headers) for i in range(5)),
        )
        assert refused.status_code == 422
        assert refused.json()["ErrorCode"] == 400
        assert all(r.status_code == 200 for r in others)
        fixed = await live.post("/email", json=message(), headers=keyed)  # a new body under the same key
        assert fixed.status_code == 200, fixed.text
        replay = await live.post("/email", json=message(), headers=keyed)
        assert replay.json()["MessageID"] == fixed.json()["MessageID"]

    async def test_one_key_with_two_bodies_at_once_stores_one(self, live: httpx.AsyncClient, engine: AsyncEngine) -> None:
        server = await create_server(live)
        await create_sender(live)
        headers = server.headers | {"Idempotency-Key": "two-bodies"}
        answers = await asyncio.gather(*(live.post("/email", json=message(Subject=s), headers=headers) for s in ("one", "two")))
        statuses = sorted(r.status_code for r in answers)
        assert statuses[0] == 200
        assert statuses[1] in (409, 422)  # the other body is refused, in flight or after
        assert len(await stored(engine, server)) == 1
