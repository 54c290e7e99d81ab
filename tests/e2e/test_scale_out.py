"""Scale-out over real processes: two API processes, two SMTP gateways (one in front of each API)
and three workers share one database. Mail sent concurrently through all four entry points reaches
the relay exactly once per recipient, is recorded delivered once, and fires one Delivery webhook per
recipient; a worker killed with SIGKILL mid-run loses nothing: what it had claimed is delivered by
the others once its lease expires."""

from __future__ import annotations

import asyncio
import json
import smtplib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.bounces.verp import parse_return_path
from api_service.db import async_database_url
from api_service.models import Base
from tests.api.conftest import Hook, Receiver
from tests.compat.conftest import free_port
from tests.e2e.test_operations import Proc, base_env, spawn, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ACCOUNT = {"X-Postmark-Account-Token": "ops-e2e-account-token"}
# Short, so that the kill test does not wait long for the dead worker's lease, yet far above how
# late a heartbeat (every third of it) can be on a loaded two-core machine: a worker's heartbeat
# waits for a pooled connection behind up to WEBHOOK_CONCURRENCY webhook updates, and a 4 s lease
# lapsed there, so that another worker sent the mail again (as a lapsed lease is meant to allow).
LEASE_SECONDS = 20
RETURN_PATH_DOMAIN = "bounces.scale.test"
WORKERS = ("worker-1", "worker-2", "worker-3")  # each worker's EHLO name: the sink tells them apart by it
RETRIES = 10
Pair = tuple[uuid.UUID, str]  # (message id, recipient): what must arrive once


@dataclass
class CountingSink:
    """The relay: records every (message id, recipient) it accepts with the EHLO name of the worker
    that sent it. Transactions from `stall_helo` are never answered (as from a relay that hangs
    while that worker dies); their pairs go to `stalled`."""

    accepted: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # when each of `accepted` arrived
    stalled: list[Pair] = field(default_factory=list)
    header_mismatches: list[str] = field(default_factory=list)
    stall_helo: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # The envelope sender is the VERP return path pgb+<message id hex>-<mac>@RETURN_PATH_DOMAIN.
        path = parse_return_path(str(envelope.mail_from))
        assert path is not None
        message_id = path.message_id
        headers = BytesHeaderParser().parsebytes(bytes(envelope.original_content or b""))
        helo = str(session.host_name)
        with self.lock:
            if str(message_id) not in str(headers.get("X-PM-Message-Id", "")) + str(headers.get("Message-ID", "")):
                self.header_mismatches.append(f"{message_id}: {headers.get('Message-ID')}")
            if helo == self.stall_helo:
                self.stalled.extend((message_id, rcpt.lower()) for rcpt in envelope.rcpt_tos)
                hang = True
            else:
                self.accepted.extend((message_id, rcpt.lower(), helo) for rcpt in envelope.rcpt_tos)
                self.at.extend(time.monotonic() for _ in envelope.rcpt_tos)
                hang = False
        if hang:  # until the test ends; the worker is killed meanwhile
            await asyncio.to_thread(self.release.wait, 300)
        return "451 4.3.0 Try again later" if hang else "250 2.0.0 Ok"

    def counts(self, wanted: set[Pair]) -> Counter[Pair]:
        with self.lock:
            return Counter((m, r) for m, r, _ in self.accepted if (m, r) in wanted)

    def arrivals(self, pair: Pair) -> list[tuple[str, float]]:
        with self.lock:
            return [(helo, round(at, 2)) for (m, r, helo), at in zip(self.accepted, self.at, strict=True) if (m, r) == pair]

    def senders(self, pair: Pair) -> list[str]:
        with self.lock:
            return [helo for m, r, helo in self.accepted if (m, r) == pair]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """tests/api/conftest.py's webhook receiver, sized for three workers posting 50 at a time each:
    HTTP/1.1 keep-alive and a listen backlog that does not turn a burst into refused connections."""
    hooks: list[Hook] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hooks.append(Hook(self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook", hooks=hooks, statuses=[])
    server.shutdown()
    server.server_close()


@dataclass
class Scale:
    apis: list[Proc]
    gateways: list[Proc]
    workers: list[Proc]
    sink: CountingSink
    database_url: str
    logs: Path


@pytest.fixture(scope="module")
def scale(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    logs = tmp_path_factory.mktemp("scale")
    sink = CountingSink()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    common = {
        # Other e2e modules fill their own limits; here every message must get through.
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        # Small pools: 2 × 5 for the APIs, 3 × 10 for the workers, on a PostgreSQL shared with other runs.
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "3",
        "DELIVERY_CONCURRENCY": "5",
        "DELIVERY_BATCH_SIZE": "50",
        "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "DELIVERY_RETRY_FIRST_SECONDS": "0.5",
        "WORKER_POLL_SECONDS": "0.1",
        "WEBHOOK_RETRY_SCHEDULE": "1,1,2,2,2,2,2,2,2,2",
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{sink_port}",
        "RETURN_PATH_DOMAIN": RETURN_PATH_DOMAIN,
        "MX_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WORKER_METRICS_PORT": "0",
        "SMTP_METRICS_PORT": "0",
    }
    procs: list[Proc] = []
    try:
        apis = []
        for n in (1, 2):
            port = free_port()
            env = base_env(database_url, **common, API_PORT=str(port))
            apis.append(spawn(f"api-{n}", "api_service", env, logs, url=f"http://127.0.0.1:{port}"))
        procs += apis
        gateways = []
        for n, api in enumerate(apis, start=1):
            port = free_port()
            env = base_env(database_url, **common, SMTP_PORT=str(port), API_URL=api.url, SMTP_INBOUND_PORT="0")
            gateways.append(spawn(f"smtp-{n}", "smtp_service", env, logs, port=port))
        procs += gateways
        workers = [spawn(name, "api_service.worker", base_env(database_url, **common, HELO_NAME=name), logs) for name in WORKERS]
        procs += workers
        deadline = time.monotonic() + 90
        for proc in apis + gateways:
            wait_ready(proc, deadline)
        yield Scale(apis=apis, gateways=gateways, workers=workers, sink=sink, database_url=database_url, logs=logs)
    finally:
        sink.release.set()
        for proc in procs:
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in procs:
            try:
                proc.process.wait(timeout=20)
            except Exception:
                proc.process.kill()
        controller.stop()
        truncate(database_url)  # the database is the session's: leave it empty for the next module


def sender(run: str) -> str:
    return f"app@{run}.scale.example"  # one signature per run: the account's signatures outlive a test


def truncate(database_url: str) -> None:
    async def run() -> None:
        engine = create_async_engine(async_database_url(database_url), pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
        finally:
            await engine.dispose()

    asyncio.run(run())


def make_server(scale: Scale, run: str, hook_url: str) -> str:
    """A server with SMTP on, a Delivery webhook to `hook_url`, and a confirmed sender; its token."""
    api = scale.apis[0].url
    created = httpx.post(f"{api}/servers", json={"Name": f"Scale-out {run}", "SmtpApiActivated": True}, headers=ACCOUNT, timeout=30)
    created.raise_for_status()
    token: str = created.json()["ApiTokens"][0]
    httpx.post(f"{api}/senders", json={"FromEmail": sender(run), "Name": "App"}, headers=ACCOUNT, timeout=30).raise_for_status()
    hook = {"Url": hook_url, "Triggers": {"Delivery": {"Enabled": True}}}
    httpx.post(f"{api}/webhooks", json=hook, headers={"X-Postmark-Server-Token": token}, timeout=30).raise_for_status()
    return token


def recipients(run: str, n: int) -> list[str]:
    # Two domains: the worker sends one SMTP transaction per message and domain, so both a
    # single-recipient and a two-recipient transaction are exercised.
    return [f"{run}-{n}-a@one.example", f"{run}-{n}-b@two.example", f"{run}-{n}-c@one.example"]


def send_rest(api: str, token: str, run: str, numbers: list[int]) -> list[Pair]:
    sent: list[Pair] = []
    with httpx.Client(headers={"X-Postmark-Server-Token": token}, timeout=60) as client:
        for n in numbers:
            to = recipients(run, n)
            body = {"From": sender(run), "To": ", ".join(to[:2]), "Cc": to[2], "Subject": f"{run} {n}", "TextBody": "hello"}
            answer = client.post(f"{api}/email", json=body)
            for _ in range(RETRIES):
                # 503: PostgreSQL (shared with other test runs) refused a connection and nothing was
                # stored; a client sends again, as the answer asks.
                if answer.status_code != 503:
                    break
                time.sleep(1)
                answer = client.post(f"{api}/email", json=body)
            assert answer.status_code == 200, answer.text
            message_id = uuid.UUID(answer.json()["MessageID"])
            sent += [(message_id, r) for r in to]
    return sent


def send_smtp(port: int, token: str, run: str, numbers: list[int]) -> list[Pair]:
    sent: list[Pair] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.login(token, token)
        for n in numbers:
            to = recipients(run, n)
            message = EmailMessage()
            message["From"], message["To"], message["Cc"], message["Subject"] = sender(run), ", ".join(to[:2]), to[2], f"{run} {n}"
            message.set_content("hello")
            for _ in range(RETRIES):
                client.mail(sender(run))
                for address in to:
                    client.rcpt(address)
                code, reply = client.data(message.as_bytes(policy=SMTP_POLICY))
                if code != 451:  # the API could not store it (see send_rest): an MTA tries again
                    break
                time.sleep(1)
            assert code == 250, reply
            message_id = uuid.UUID(reply.decode().rsplit(" ", 1)[1])
            sent += [(message_id, r) for r in to]
    return sent


def send_everywhere(scale: Scale, token: str, run: str, count: int, *, during: Callable[[], None] | None = None) -> set[Pair]:
    """`count` messages of three recipients, a quarter through each API over REST and each gateway
    over SMTP, two clients per entry point, all at once; `during` runs beside them."""
    entry_points: list[Callable[[list[int]], list[Pair]]] = [
        *(partial(send_rest, api.url, token, run) for api in scale.apis),
        *(partial(send_smtp, gw.port, token, run) for gw in scale.gateways),
    ]
    clients = 2 * len(entry_points)
    jobs = [partial(entry_points[i % len(entry_points)], list(range(i, count, clients))) for i in range(clients)]
    with ThreadPoolExecutor(max_workers=clients + 1) as pool:
        futures = [pool.submit(job) for job in jobs]
        if during is not None:
            pool.submit(during).result()
        sent = [pair for future in futures for pair in future.result()]
    assert len(sent) == len(set(sent)) == 3 * count
    return set(sent)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what()}")
        time.sleep(0.2)


def hook_counts(hooks: Receiver, wanted: set[Pair]) -> Counter[Pair]:
    found: Counter[Pair] = Counter()
    for hook in list(hooks.hooks):
        payload = json.loads(hook.body)
        if payload.get("RecordType") == "Delivery":
            pair = (uuid.UUID(payload["MessageID"]), str(payload["Recipient"]).lower())
            if pair in wanted:
                found[pair] += 1
    return found


@dataclass(frozen=True)
class DatabaseView:
    status: Counter[str]  # recipients of the run's messages by status
    delivered_events: Counter[Pair]
    attempts: dict[Pair, int]  # how often each recipient was claimed
    hooks: Counter[str]  # the run's Delivery webhook outbox rows by status and last error
    hook_rows: Counter[Pair]  # Delivery webhook outbox rows per recipient: one each, however often POSTed
    hook_retried: set[Pair]  # recipients whose webhook took more than one attempt


def database_view(database_url: str, message_ids: set[uuid.UUID]) -> DatabaseView:
    async def read() -> DatabaseView:
        engine = create_async_engine(async_database_url(database_url), pool_size=1, max_overflow=0)
        try:
            async with engine.connect() as conn:
                ids = list(message_ids)
                status = Counter(
                    {
                        str(row[0]): int(row[1])
                        for row in await conn.execute(
                            text("SELECT status, count(*) FROM message_recipients WHERE message_id = ANY(:ids) GROUP BY status"),
                            {"ids": ids},
                        )
                    }
                )
                attempts = {
                    (row[0], row[1]): int(row[2])
                    for row in await conn.execute(
                        text("SELECT message_id, lower(email), attempts FROM message_recipients WHERE message_id = ANY(:ids)"), {"ids": ids}
                    )
                }
                events: Counter[Pair] = Counter()
                for row in await conn.execute(
                    text("SELECT message_id, lower(recipient) FROM message_events WHERE type = 'Delivered' AND message_id = ANY(:ids)"),
                    {"ids": ids},
                ):
                    events[(row[0], row[1])] += 1
                hooks = Counter(
                    {
                        f"{row[0]} {row[1]}": int(row[2])
                        for row in await conn.execute(
                            text(
                                "SELECT status, left(last_error, 120), count(*) FROM webhook_deliveries"
                                " WHERE record_type = 'Delivery' AND payload->>'MessageID' = ANY(:ids) GROUP BY 1, 2"
                            ),
                            {"ids": [str(i) for i in ids]},
                        )
                    }
                )
                hook_rows: Counter[Pair] = Counter()
                hook_retried: set[Pair] = set()
                for row in await conn.execute(
                    text(
                        "SELECT payload->>'MessageID', lower(payload->>'Recipient'), attempts FROM webhook_deliveries"
                        " WHERE record_type = 'Delivery' AND payload->>'MessageID' = ANY(:ids)"
                    ),
                    {"ids": [str(i) for i in ids]},
                ):
                    pair = (uuid.UUID(row[0]), row[1])
                    hook_rows[pair] += 1
                    if row[2] > 1:
                        hook_retried.add(pair)
                return DatabaseView(
                    status=status, delivered_events=events, attempts=attempts, hooks=hooks, hook_rows=hook_rows, hook_retried=hook_retried
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


class ConnectionWatch:
    """Samples, on one connection of its own, how many backends the test database has: what the
    seven processes hold on PostgreSQL at once (README, "Running at scale"), this one included."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.watch()), daemon=True)

    async def watch(self) -> None:
        engine = create_async_engine(async_database_url(self.database_url), pool_size=1, max_overflow=0)
        try:
            while not self.stop.is_set():
                try:
                    async with engine.connect() as conn:
                        while not self.stop.is_set():
                            found = await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"))
                            self.peak = max(self.peak, int(found or 0))
                            await asyncio.sleep(0.3)
                except Exception:  # the shared server is full ("too many clients"): try again
                    await asyncio.sleep(0.5)
        finally:
            await engine.dispose()

    def __enter__(self) -> ConnectionWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def lease_warnings(scale: Scale) -> list[str]:
    """The workers' complaints about leases, to explain a failure."""
    return [line[:200] for worker in scale.workers for line in worker.log.read_text(errors="replace").splitlines() if "lease" in line]


def wait_for_everything(scale: Scale, hooks: Receiver, sent: set[Pair]) -> None:
    """Until every recipient reached the sink and its Delivery webhook the receiver."""
    ids = {m for m, _ in sent}

    def sink_state() -> str:
        missing = sent - set(scale.sink.counts(sent))
        return f"every recipient at the sink: {len(missing)} missing, e.g. {sorted(missing)[:3]}, queue {database_view(scale.database_url, ids).status}"

    def hook_state() -> str:
        missing = sent - set(hook_counts(hooks, sent))
        return f"a Delivery webhook per recipient: {len(missing)} missing, e.g. {sorted(missing)[:3]}, outbox {database_view(scale.database_url, ids).hooks}"

    wait_until(lambda: set(scale.sink.counts(sent)) == sent, timeout=180, what=sink_state)
    wait_until(lambda: set(hook_counts(hooks, sent)) == sent, timeout=120, what=hook_state)
    # An attempt that reached the receiver but failed on the way back is retried: wait for it too.
    wait_until(
        lambda: {key.split(" ", 1)[0] for key in database_view(scale.database_url, ids).hooks} == {"delivered"},
        timeout=120,
        what=hook_state,
    )


def test_every_recipient_gets_each_message_exactly_once(scale: Scale, receiver: Receiver) -> None:
    token = make_server(scale, "once", receiver.url)
    with ConnectionWatch(scale.database_url) as connections:
        sent = send_everywhere(scale, token, "once", 400)
        ids = {m for m, _ in sent}
        wait_for_everything(scale, receiver, sent)
    # Anything sent twice would come from a lease that lapsed: give one the time to do so.
    time.sleep(2 * LEASE_SECONDS)

    at_sink = scale.sink.counts(sent)
    assert {pair: scale.sink.arrivals(pair) for pair, n in at_sink.items() if n != 1} == {}, lease_warnings(scale)
    assert sum(at_sink.values()) == len(sent) == 3 * 400
    # Every worker took part: the queue is shared, not owned by one of them.
    assert {helo for _, _, helo in scale.sink.accepted} >= set(WORKERS)
    assert scale.sink.header_mismatches == []
    view = database_view(scale.database_url, ids)
    assert view.status == Counter({"delivered": len(sent)})
    assert view.delivered_events == Counter(dict.fromkeys(sent, 1))
    # One Delivery webhook per recipient; the receiver sees one POST of each unless an attempt
    # failed on the way back (then Postmark's retry schedule posts it again, as it should).
    assert view.hook_rows == Counter(dict.fromkeys(sent, 1))
    assert {key.split(" ", 1)[0] for key in view.hooks} == {"delivered"}
    hooks = hook_counts(receiver, sent)
    assert set(hooks) == sent
    assert {pair for pair, n in hooks.items() if n > 1} <= view.hook_retried
    # Two APIs × (DB_POOL_SIZE 2 + DB_MAX_OVERFLOW 3) + three workers × (5 + 5), plus this test's reader.
    print(f"peak connections to the database while sending: {connections.peak}")
    assert 0 < connections.peak <= 2 * 5 + 3 * 10 + 1


def test_killed_worker_loses_nothing(scale: Scale, receiver: Receiver) -> None:
    token = make_server(scale, "kill", receiver.url)
    victim = scale.workers[2]
    scale.sink.stall_helo = victim.name

    def kill_when_stalled() -> None:
        # The victim hangs in DATA on the relay with a claim in hand: kill -9 it there.
        wait_until(lambda: len(scale.sink.stalled) > 0, timeout=120, what=lambda: "the victim to reach the relay")
        time.sleep(0.5)
        victim.process.kill()
        victim.process.wait(10)

    sent = send_everywhere(scale, token, "kill", 200, during=kill_when_stalled)
    ids = {m for m, _ in sent}
    stalled = set(scale.sink.stalled) & sent
    assert stalled, "the victim claimed none of this run's mail"
    wait_for_everything(scale, receiver, sent)
    time.sleep(2 * LEASE_SECONDS)

    # Nothing lost, the stalled claims included, which the others took over once the lease expired.
    at_sink = scale.sink.counts(sent)
    assert set(at_sink) == sent
    for pair in stalled:
        assert scale.sink.senders(pair)
        assert victim.name not in scale.sink.senders(pair)
    # Sent twice only if the victim's relay took it and the victim died before recording it.
    twice = {pair for pair, n in at_sink.items() if n > 1}
    for pair in twice:
        assert victim.name in scale.sink.senders(pair), pair
    view = database_view(scale.database_url, ids)
    assert view.status == Counter({"delivered": len(sent)})
    assert set(view.delivered_events) == sent
    # Claimed by the victim, then again by another worker once the victim's lease had expired.
    assert all(view.attempts[pair] >= 2 for pair in stalled)
    assert set(hook_counts(receiver, sent)) == sent
    assert set(view.hook_rows) == sent
