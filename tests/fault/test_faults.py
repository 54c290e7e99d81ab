"""The fault test: api, smtp and a worker as real processes on a PostgreSQL of the test's own, a
few thousand messages over REST and SMTP from clients that retry as real clients do (the same
Idempotency-Key; the same bytes), while the worker, the API and the SMTP gateway are killed with
SIGKILL in turn and PostgreSQL is restarted once.

Every message that got 200/250 must reach the sink; duplicates at the sink are bounded by what the
worker had in flight at the kill instants; no 200/250 is given while the database is down; every
process recovers without a restart of the others. Run alone with `pytest -m fault`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiosmtplib
import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from api_service.devtools.embedded_db import ensure_database, migrate, with_database
from tests.fault.postgres import OwnPostgres, create

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_TOKEN = "fault-test-account-token"
REST_MESSAGES, REST_CLIENTS = 1500, 8
SMTP_MESSAGES, SMTP_CLIENTS = 500, 4
LEASE_SECONDS = 5
# At most this many recipient groups are being sent (or recorded) at once: what "in flight" is.
CONCURRENCY = 10
FAULT_ID = re.compile(rb"X-Fault-Id: (\S+)")
MODULES = {"api": "api_service", "smtp": "smtp_service", "worker": "api_service.worker"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sink:
    """The relay the worker delivers to: counts each message by its X-Fault-Id."""

    counts: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        match = FAULT_ID.search(bytes(envelope.original_content or b""))
        if match is not None:
            key = match.group(1).decode()
            with self.lock:
                self.counts[key] += 1
                self.first_seen.setdefault(key, time.monotonic())
        return "250 2.0.0 Ok"


@dataclass
class Attempt:
    key: str
    started: float
    ended: float
    ok: bool


@dataclass
class Processes:
    env: dict[str, str]
    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)
    files: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str) -> None:
        self.starts[name] += 1
        log = (self.logs / f"{name}-{self.starts[name]}.log").open("wb")
        self.files.append(log)
        self.running[name] = subprocess.Popen(  # noqa: S603 - our own modules
            [sys.executable, "-m", MODULES[name]], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self, name: str) -> None:
        self.running[name].send_signal(signal.SIGKILL)
        self.running[name].wait(10)

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.files:
            log.close()


@dataclass
class Run:
    """What happened: every client attempt, the fault instants and what was in flight then."""

    rest: list[Attempt] = field(default_factory=list)
    smtp: list[Attempt] = field(default_factory=list)
    done: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)
    restarted_at: dict[str, float] = field(default_factory=dict)
    database_down: tuple[float, float] = (0.0, 0.0)
    errors: list[str] = field(default_factory=list)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def api_healthy(api: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{api}/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def sending(database: str) -> int:
    """Recipients a worker has in flight right now: claimed and not yet recorded, of which at most
    CONCURRENCY groups are being sent (the rest of its claim waits its turn and is sent once)."""
    connection = await asyncpg.connect(database)
    try:
        claimed = int(await connection.fetchval("SELECT count(*) FROM message_recipients WHERE status = 'sending'"))
        return min(claimed, CONCURRENCY)
    finally:
        await connection.close()


async def rest_client(api: str, token: str, keys: list[str], run: Run) -> None:
    async with httpx.AsyncClient(timeout=15) as client:
        for key in keys:
            body = {
                "From": "sender@example.com",
                "To": f"{key}@example.net",
                "Subject": f"fault {key}",
                "TextBody": "Hello through the faults.",
                "Headers": [{"Name": "X-Fault-Id", "Value": key}],
            }
            while True:
                started = time.monotonic()
                status = 0
                try:
                    response = await client.post(
                        f"{api}/email", json=body, headers={"X-Postmark-Server-Token": token, "Idempotency-Key": key}
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    pass
                run.rest.append(Attempt(key, started, time.monotonic(), status == 200))
                if status == 200:
                    break
                if 400 <= status < 500 and status != 409:
                    run.errors.append(f"REST {key}: {status} {response.text}")
                    return
                await asyncio.sleep(0.2)
            run.done += 1


async def smtp_client(port: int, token: str, keys: list[str], run: Run) -> None:
    client: aiosmtplib.SMTP | None = None
    for key in keys:
        raw = (
            f"From: sender@example.com\r\nTo: {key}@example.net\r\nSubject: fault {key}\r\n"
            f"Message-ID: <{key}@client.example>\r\nX-Fault-Id: {key}\r\n\r\nHello through the faults.\r\n"
        ).encode()
        while True:
            started = time.monotonic()
            ok = False
            try:
                if client is None:
                    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=15, start_tls=False)
                    await client.connect()
                    await client.login(token, token)
                await client.sendmail("sender@example.com", [f"{key}@example.net"], raw)
                ok = True
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500 and exc.code != 535:
                    run.errors.append(f"SMTP {key}: {exc.code} {exc.message}")
                    return
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
            run.smtp.append(Attempt(key, started, time.monotonic(), ok))
            if ok:
                break
            if client is not None:
                client.close()
                client = None
            await asyncio.sleep(0.2)
        run.done += 1
    if client is not None:
        client.close()


async def faults(processes: Processes, pg: OwnPostgres, database: str, api: str, smtp_port: int, total: int, run: Run) -> None:
    async def reach(share: float) -> None:
        await wait_for(lambda: _true(run.done >= share * total), f"{share:.0%} of the messages", seconds=300)

    await reach(0.15)
    processes.kill("worker")
    run.in_flight["worker"] = await sending(database)
    await asyncio.sleep(1)
    processes.start("worker")
    run.restarted_at["worker"] = time.monotonic()

    await reach(0.35)
    processes.kill("api")
    await asyncio.sleep(1)
    processes.start("api")
    await wait_for(lambda: api_healthy(api), "the API after its restart")
    run.restarted_at["api"] = time.monotonic()

    await reach(0.55)
    processes.kill("smtp")
    await asyncio.sleep(1)
    processes.start("smtp")
    await wait_for(lambda: port_open(smtp_port), "the SMTP gateway after its restart")
    run.restarted_at["smtp"] = time.monotonic()

    await reach(0.75)
    run.in_flight["database"] = await sending(database)
    await asyncio.to_thread(pg.stop)
    down = time.monotonic()
    await asyncio.sleep(2)
    up = time.monotonic()
    await asyncio.to_thread(pg.start)
    run.database_down = (down, up)


async def _true(value: bool) -> bool:
    return value


async def drive(processes: Processes, pg: OwnPostgres, database: str, api: str, smtp_port: int, token: str) -> Run:
    run = Run()
    rest_keys = [f"r{n:05d}" for n in range(REST_MESSAGES)]
    smtp_keys = [f"s{n:05d}" for n in range(SMTP_MESSAGES)]
    clients = [rest_client(api, token, rest_keys[i::REST_CLIENTS], run) for i in range(REST_CLIENTS)]
    clients += [smtp_client(smtp_port, token, smtp_keys[i::SMTP_CLIENTS], run) for i in range(SMTP_CLIENTS)]
    await asyncio.gather(faults(processes, pg, database, api, smtp_port, REST_MESSAGES + SMTP_MESSAGES, run), *clients)
    return run


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_nothing_accepted_is_lost_or_sent_twice(tmp_path: Path) -> None:
    pg = create(free_port())
    sink = Sink()
    relay = Controller(sink, hostname="127.0.0.1", port=free_port())
    relay.start()
    database = with_database(pg.url, "postgate")
    api_port, smtp_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "ACCOUNT_TOKEN": ACCOUNT_TOKEN,
        "API_PORT": str(api_port),
        "API_URL": api,
        "SMTP_PORT": str(smtp_port),
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{relay.port}",
        "RETURN_PATH_DOMAIN": "bounces.postgate.test",
        "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "DELIVERY_CONCURRENCY": str(CONCURRENCY),
        "DELIVERY_RETRY_FIRST_SECONDS": "1",
        "WORKER_POLL_SECONDS": "0.1",
        "SMTP_IP_AUTH_FAILURES": "0",
        "DB_POOL_SIZE": "10",
        # The sender below sends at once, as under `make run` (the confirmation flow has its own tests).
        "SENDER_AUTO_CONFIRM": "true",
    }
    processes = Processes(env=env, logs=tmp_path)
    try:
        ensure_database(database)
        migrate(database)
        for name in ("api", "smtp", "worker"):
            processes.start(name)
        asyncio.run(wait_for(lambda: api_healthy(api), "the API"))
        asyncio.run(wait_for(lambda: port_open(smtp_port), "the SMTP gateway"))
        account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        created = httpx.post(f"{api}/servers", json={"Name": "Faults", "SmtpApiActivated": True}, headers=account, timeout=10)
        token = created.json()["ApiTokens"][0]
        httpx.post(f"{api}/senders", json={"FromEmail": "sender@example.com", "Name": "S"}, headers=account, timeout=10).raise_for_status()

        run = asyncio.run(drive(processes, pg, database.replace("postgresql://", "postgres://"), api, smtp_port, token))
        assert run.errors == []

        accepted = {a.key for a in run.rest + run.smtp if a.ok}
        assert len(accepted) == REST_MESSAGES + SMTP_MESSAGES

        async def all_delivered() -> bool:
            with sink.lock:
                return accepted <= set(sink.counts)

        asyncio.run(wait_for(all_delivered, "every accepted message at the sink", seconds=120))

        # Duplicates: no more than the worker had in flight when it was killed and when the
        # database went away (what was sent but possibly not yet recorded).
        duplicates = sum(count - 1 for count in sink.counts.values())
        print(
            f"fault test: {len(accepted)} accepted, {sum(sink.counts.values())} delivered, {duplicates} duplicates, "
            f"in flight {run.in_flight}, {len(run.rest) + len(run.smtp)} attempts"
        )
        assert duplicates <= run.in_flight["worker"] + run.in_flight["database"], (duplicates, run.in_flight)

        # No 200/250 for a request made and answered while the database was down; and some were made.
        down, up = run.database_down
        during = [a for a in run.rest + run.smtp if a.started >= down and a.ended <= up]
        assert during
        assert not any(a.ok for a in during)

        # Every process recovered without the others being restarted: each was started twice (at
        # first, and after its own kill), all are still running, and after the last fault (the
        # database restart, which none of them was restarted for) messages were accepted over
        # REST and SMTP and delivered.
        assert dict(processes.starts) == {"api": 2, "smtp": 2, "worker": 2}
        assert all(p.poll() is None for p in processes.running.values())
        assert any(a.ok and a.started > up for a in run.rest)
        assert any(a.ok and a.started > up for a in run.smtp)
        assert any(seen > up for seen in sink.first_seen.values())
        for name, at in run.restarted_at.items():
            assert any(a.ok and a.started > at for a in run.rest + run.smtp), name
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{tail(log)}")
        print(f"--- postgres\n{tail(pg.data / 'server.log')}")
        raise
    finally:
        processes.stop_all()
        relay.stop()
        pg.remove()
