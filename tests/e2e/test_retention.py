"""Retention over real processes: a database with hundreds of thousands of aged rows, the worker
(`python -m api_service.worker`) purging it, and the API (`python -m api_service`) taking mail meanwhile."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api_service.db import async_database_url
from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, with_database
from bench.aged import kept, populate, rows_per_server
from tests.e2e.conftest import free_port, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]
ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_TOKEN = secrets.token_hex(20)
N = 40_000  # messages per server; with what hangs off them, about 150,000 rows per server
SHORT_DAYS = 7  # server A's RetentionDays
GLOBAL_DAYS = 30  # RETENTION_DAYS, which server B follows


@dataclass(frozen=True, slots=True)
class Stack:
    database_url: str
    api: str
    engine: AsyncEngine
    short: int  # server ids
    default: int
    token: str  # server B's token
    logs: Path


def env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACCOUNT_TOKEN": ACCOUNT_TOKEN,
        "SENDER_AUTO_CONFIRM": "true",
        "RATE_LIMIT_ENABLED": "false",
        "RETENTION_DAYS": str(GLOBAL_DAYS),
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
        **extra,
    }


def spawn(module: str, environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - our own modules


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def aged_database(database_url: str) -> Iterator[str]:
    url = with_database(database_url, f"{make_url(database_url).database}_retention")
    ensure_database(url)
    migrate(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def api(aged_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("retention-logs")
    port = free_port()
    process = spawn("api_service", env(aged_database, API_PORT=str(port)), logs / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, logs
    finally:
        stop(process)


@pytest_asyncio.fixture(scope="module")
async def stack(aged_database: str, api: tuple[str, Path]) -> AsyncIterator[Stack]:
    url, logs = api
    account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
    async with httpx.AsyncClient(base_url=url, headers=account, timeout=30) as client:
        short = (await client.post("/servers", json={"Name": "Short"})).json()
        default = (await client.post("/servers", json={"Name": "Default"})).json()
        edited = await client.put(f"/servers/{short['ID']}", json={"RetentionDays": SHORT_DAYS})
        assert edited.json()["RetentionDays"] == SHORT_DAYS
        assert (await client.get(f"/servers/{default['ID']}")).json()["RetentionDays"] == GLOBAL_DAYS
        assert (await client.post("/senders", json={"FromEmail": "fresh@example.com", "Name": "Fresh"})).status_code == 200
    engine = create_async_engine(async_database_url(aged_database), pool_size=2)
    async with engine.begin() as conn:
        await populate(conn, server_ids=[short["ID"], default["ID"]], n=N)
    try:
        yield Stack(aged_database, url, engine, short["ID"], default["ID"], default["ApiTokens"][0], logs)
    finally:
        await engine.dispose()


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


EXPIRED_MESSAGES = """
    SELECT count(*) FROM messages m JOIN servers s ON s.id = m.server_id
     WHERE m.subject LIKE 'Aged %' AND m.created_at < now() - make_interval(days => COALESCE(s.retention_days, :days))
       AND NOT EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND r.status = 'deferred')
"""


async def assert_kept(engine: AsyncEngine, *, server_id: int, days: int) -> None:
    """Exactly what a retention of `days` keeps of the server's aged rows is left."""
    want = kept(n=N, days=days)

    async def count(sql: str) -> int:
        return await scalar(engine, sql, sid=server_id)

    assert await count("SELECT count(*) FROM messages WHERE server_id = :sid AND subject LIKE 'Aged %'") == want.messages
    # Recipients, events and opens went with their messages; queued recipients stayed.
    aged = "SELECT count(*) FROM {} x JOIN messages m ON m.id = x.message_id WHERE m.server_id = :sid AND m.subject LIKE 'Aged %'"
    assert await count(aged.format("message_recipients")) == want.messages
    assert await count(aged.format("message_events")) == want.messages
    assert (
        await count(
            "SELECT count(*) FROM message_recipients r JOIN messages m ON m.id = r.message_id"
            " WHERE m.server_id = :sid AND r.status = 'deferred' AND m.subject LIKE 'Aged %'"
        )
        == want.waiting
    )
    assert await count("SELECT count(*) FROM message_opens WHERE server_id = :sid") == await count(
        "SELECT count(*) FROM messages WHERE server_id = :sid AND subject LIKE 'Aged %' AND right(subject, 1) = '0'"
    )
    assert await count("SELECT count(*) FROM bounces WHERE server_id = :sid") == want.bounces
    assert await count("SELECT count(*) FROM bounce_dumps WHERE server_id = :sid") == want.dumps
    assert await count("SELECT count(*) FROM webhook_deliveries WHERE server_id = :sid") == want.webhooks
    assert await count("SELECT count(*) FROM inbound_messages WHERE server_id = :sid") == want.inbound
    assert await count("SELECT count(*) FROM bulk_requests WHERE server_id = :sid") == want.bulk
    assert await count("SELECT count(*) FROM idempotency_keys WHERE server_id = :sid") == want.keys
    assert await count("SELECT count(*) FROM suppressions WHERE server_id = :sid") == 50


class TestPurge:
    @pytest.mark.timeout(900)
    async def test_worker_purges_expired_rows_while_mail_is_accepted(self, stack: Stack) -> None:
        engine = stack.engine
        total = await scalar(engine, "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
        assert total >= 2 * rows_per_server(N) > 250_000
        expired_at_start = await scalar(engine, EXPIRED_MESSAGES, days=GLOBAL_DAYS)
        assert expired_at_start > N  # more than half of them

        dead_port = free_port()  # the fresh mail stays queued (deferred), never leaves the machine
        worker = spawn(
            "api_service.worker",
            env(
                stack.database_url,
                OUTBOUND_RELAY=f"smtp://127.0.0.1:{dead_port}",
                RETENTION_BATCH_SIZE="200",
                RETENTION_INTERVAL_SECONDS="0.5",
                WORKER_POLL_SECONDS="0.2",
            ),
            stack.logs / "worker.log",
        )
        try:
            deadline = time.monotonic() + 120
            while await scalar(engine, EXPIRED_MESSAGES, days=GLOBAL_DAYS) == expired_at_start:
                assert worker.poll() is None, (stack.logs / "worker.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the purge did not start"
                await asyncio.sleep(0.2)

            # Mail is accepted while the purge deletes: every send answers 200 within a bounded
            # time (no waiting behind the purge's locks), and some of them while expired rows remain.
            sent: list[str] = []
            during_purge = 0
            headers = {"X-Postmark-Server-Token": stack.token}
            async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=10) as client:
                for i in range(30):
                    remaining = await scalar(engine, EXPIRED_MESSAGES, days=GLOBAL_DAYS)
                    response = await client.post(
                        "/email", json={"From": "fresh@example.com", "To": "to@example.net", "Subject": f"Fresh {i}", "TextBody": "Hi"}
                    )
                    assert response.status_code == 200, response.text
                    sent.append(response.json()["MessageID"])
                    during_purge += remaining > 0
            assert during_purge >= 10

            deadline = time.monotonic() + 600
            while await scalar(engine, EXPIRED_MESSAGES, days=GLOBAL_DAYS):
                assert worker.poll() is None, (stack.logs / "worker.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the purge did not finish"
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # a last round over the other kinds
        finally:
            stop(worker)

        for server_id, days in ((stack.short, SHORT_DAYS), (stack.default, GLOBAL_DAYS)):
            await assert_kept(engine, server_id=server_id, days=days)
        # The short server kept less than the default one: its own RetentionDays applied.
        assert kept(n=N, days=SHORT_DAYS).messages < kept(n=N, days=GLOBAL_DAYS).messages

        # What users see: the fresh mail, an aged message within retention, not an expired one.
        headers = {"X-Postmark-Server-Token": stack.token}
        async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=10) as client:
            for message_id in sent:
                assert (await client.get(f"/messages/outbound/{message_id}/details")).status_code == 200
            young = f"00000000-0000-4000-8000-{stack.default * 10_000_000 + 1:012x}"  # g = 1: 1.5 days old
            old = f"00000000-0000-4000-8000-{stack.default * 10_000_000 + 89:012x}"  # g = 89: 89.5 days old
            assert (await client.get(f"/messages/outbound/{young}/details")).status_code == 200
            gone = await client.get(f"/messages/outbound/{old}/details")
            assert gone.status_code == 404
            assert gone.json()["ErrorCode"] == 701
