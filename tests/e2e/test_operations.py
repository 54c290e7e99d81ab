"""Operations over real processes: rate limits shared by API processes (PostgreSQL and Redis) and
failing open, /metrics of the API (two uvicorn workers added up), the worker and the SMTP gateway,
JSON logs with one line per request, delivery attempt and SMTP session, bounded during outages, and
never a token or a password in them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.db import async_database_url
from api_service.models import Base
from tests.compat.conftest import free_port
from tests.smtp_service.conftest import Relay

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_TOKEN = "ops-e2e-account-token"
METRICS_TOKEN = "ops-e2e-metrics-token"
BURST = 20
SLOW = "0.001"  # one token every 1000 s: nothing refills while the module runs


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Sink:
    """A loopback SMTP server the worker relays to."""

    received: list[Envelope] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.received.append(envelope)
        return "250 2.0.0 Ok"


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    port: int = 0

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else, such as a traceback, is skipped)."""
        found = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
        return found


@dataclass
class Stack:
    api: Proc  # two uvicorn workers
    api2: Proc  # another API process on the same database
    worker: Proc
    smtp: Proc
    redis_apis: list[Proc]
    open_api: Proc  # Redis unreachable: fails open
    sink: Sink
    procs: list[Proc]
    worker_metrics: str
    smtp_metrics: str


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACCOUNT_TOKEN": ACCOUNT_TOKEN,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "METRICS_TOKEN": METRICS_TOKEN,
        "RATE_LIMIT_SERVER_BURST": str(BURST),
        "RATE_LIMIT_SERVER_PER_SECOND": SLOW,
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
        "SENDER_AUTO_CONFIRM": "true",  # the sender made below sends at once, as under `make run`
        **extra,
    }


def spawn(name: str, module: str, env: dict[str, str], logs: Path, *, url: str = "", port: int = 0) -> Proc:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - our own modules
    return Proc(name=name, process=process, log=log, url=url, port=port or (int(url.rsplit(":", 1)[1]) if url else 0))


def wait_ready(proc: Proc, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.log.read_text()[-3000:]}")
        try:
            if proc.url:
                answer = httpx.get(f"{proc.url}/health", timeout=2)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:200]}"
            else:
                with socket.create_connection(("127.0.0.1", proc.port), timeout=1):
                    return
        except (httpx.HTTPError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not start (last: {last}):\n{proc.log.read_text()[-3000:]}")


def api_proc(name: str, database_url: str, logs: Path, **extra: str) -> Proc:
    port = free_port()
    env = base_env(database_url, API_PORT=str(port), **extra)
    return spawn(name, "api_service", env, logs, url=f"http://127.0.0.1:{port}")


def stop(proc: Proc) -> None:
    if proc.process.poll() is None:
        proc.process.terminate()
        try:
            proc.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.process.kill()


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("ops-logs")
    sink = Sink()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    api = api_proc("api", database_url, logs, API_WORKERS="2")
    api2 = api_proc("api2", database_url, logs)
    redis_apis = (
        [api_proc(f"redis-api{i}", database_url, logs, REDIS_URL="redis://127.0.0.1:6379/14") for i in range(2)] if redis_up() else []
    )
    open_api = api_proc("open-api", database_url, logs, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    worker_metrics = free_port()
    worker = spawn(
        "worker",
        "api_service.worker",
        base_env(
            database_url,
            OUTBOUND_RELAY=f"smtp://127.0.0.1:{sink_port}",
            WORKER_POLL_SECONDS="0.1",
            WORKER_METRICS_PORT=str(worker_metrics),
        ),
        logs,
        port=worker_metrics,
    )
    smtp_port, smtp_metrics = free_port(), free_port()
    smtp = spawn(
        "smtp",
        "smtp_service",
        base_env(database_url, SMTP_PORT=str(smtp_port), API_URL=api.url, SMTP_METRICS_PORT=str(smtp_metrics), SMTP_AUTH_CACHE_SECONDS="0"),
        logs,
        port=smtp_port,
    )
    procs = [api, api2, *redis_apis, open_api, worker, smtp]
    try:
        deadline = time.monotonic() + 90
        for proc in procs:
            wait_ready(proc, deadline)
        yield Stack(
            api=api,
            api2=api2,
            worker=worker,
            smtp=smtp,
            redis_apis=redis_apis,
            open_api=open_api,
            sink=sink,
            procs=procs,
            worker_metrics=f"http://127.0.0.1:{worker_metrics}/metrics",
            smtp_metrics=f"http://127.0.0.1:{smtp_metrics}/metrics",
        )
    finally:
        for proc in procs:  # all at once: each takes a moment to shut down cleanly
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in procs:
            stop(proc)
        controller.stop()

        async def truncate() -> None:
            engine = create_async_engine(async_database_url(database_url))
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())


@dataclass(frozen=True)
class Server:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self.token}


TOKENS: list[str] = [ACCOUNT_TOKEN, METRICS_TOKEN]  # every secret used here, for the last test to look for


def new_server(api: str, name: str, **fields: Any) -> Server:
    account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
    created = httpx.post(f"{api}/servers", json={"Name": name, **fields}, headers=account)
    assert created.status_code == 200, created.text
    httpx.post(f"{api}/senders", json={"FromEmail": "ops@example.com", "Name": "Ops"}, headers=account)
    server = Server(id=created.json()["ID"], token=created.json()["ApiTokens"][0])
    TOKENS.append(server.token)
    return server


def send(api: str, server: Server, to: str = "someone@example.net") -> httpx.Response:
    return httpx.post(
        f"{api}/email", json={"From": "ops@example.com", "To": to, "Subject": "Hi", "TextBody": "Hello"}, headers=server.headers
    )


def scrape(url: str, token: str = METRICS_TOKEN) -> str:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.text


def value(exposition: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


class TestRateLimits:
    def test_api_processes_share_one_bucket_in_postgresql(self, stack: Stack) -> None:
        server = new_server(stack.api.url, "shared-pg")
        answers = [send((stack.api, stack.api2)[i % 2].url, server) for i in range(2 * BURST)]
        assert [a.status_code for a in answers].count(200) == BURST
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) == BURST
        assert all(a.json()["ErrorCode"] == 429 and int(a.headers["Retry-After"]) >= 1 for a in refused)

    def test_api_processes_share_one_bucket_in_redis(self, stack: Stack) -> None:
        if not stack.redis_apis:
            pytest.skip("no Redis on 127.0.0.1:6379")
        server = new_server(stack.api.url, "shared-redis")
        answers = [send(stack.redis_apis[i % 2].url, server) for i in range(2 * BURST)]
        assert [a.status_code for a in answers].count(200) == BURST
        assert [a.status_code for a in answers].count(429) == BURST

    def test_an_unreachable_store_lets_sends_through_and_logs_it_once(self, stack: Stack) -> None:
        server = new_server(stack.api.url, "fail-open")
        assert [send(stack.open_api.url, server).status_code for _ in range(BURST + 5)] == [200] * (BURST + 5)
        warnings = [line for line in stack.open_api.lines() if "rate limit store (redis) unavailable" in line["message"]]
        assert len(warnings) == 1


class TestMetrics:
    def test_the_api_needs_the_metrics_token(self, stack: Stack) -> None:
        assert httpx.get(f"{stack.api.url}/metrics").status_code == 401
        assert httpx.get(f"{stack.api.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401

    def test_the_api_adds_up_its_worker_processes(self, stack: Stack) -> None:
        server = new_server(stack.api.url, "metrics")
        before = scrape(f"{stack.api.url}/metrics")
        for _ in range(10):
            assert send(stack.api.url, server).status_code == 200  # a new connection each: either worker may answer
        after = scrape(f"{stack.api.url}/metrics")
        key = {"method": "POST", "route": "/email", "status": "200"}
        assert value(after, "postgate_http_requests_total", **key) - value(before, "postgate_http_requests_total", **key) == 10
        assert (
            value(after, "postgate_messages_accepted_total", source="api") - value(before, "postgate_messages_accepted_total", source="api")
            == 10
        )
        assert value(after, "postgate_database_up") == 1
        for name in (
            "postgate_queue_depth",
            "postgate_queue_due",
            "postgate_queue_oldest_due_age_seconds",
            "postgate_webhook_outbox_depth",
        ):
            assert value(after, name) >= 0
        assert value(after, "postgate_db_pool_connections", state="max") == 2 * 5  # two processes, 3 + 2 each
        assert all(f.name.startswith("postgate_") for f in text_string_to_metric_families(after))

    def test_the_worker_counts_and_logs_each_delivery_attempt(self, stack: Stack) -> None:
        server = new_server(stack.api.url, "delivery")
        before = scrape(stack.worker_metrics)
        sent = [send(stack.api.url, server, to=f"user{i}@example.{tld}").json()["MessageID"] for i, tld in enumerate(("net", "org", "net"))]
        until(lambda: {line.get("message_id") for line in stack.worker.lines()} >= set(sent))
        after = scrape(stack.worker_metrics)
        delivered = value(after, "postgate_delivery_attempts_total", result="delivered") - value(
            before, "postgate_delivery_attempts_total", result="delivered"
        )
        assert delivered >= 3
        attempts = {line["message_id"]: line for line in stack.worker.lines() if line.get("message_id") in sent}
        assert [attempts[m]["recipient_domain"] for m in sent] == ["example.net", "example.org", "example.net"]
        assert all(a["server_id"] == server.id and a["reply_code"] == 250 and a["result"] == "delivered" for a in attempts.values())
        assert httpx.get(stack.worker_metrics).status_code == 401

    def test_api_request_lines_name_route_status_and_server(self, stack: Stack) -> None:
        server = new_server(stack.api2.url, "request-lines")
        sent = send(stack.api2.url, server).json()["MessageID"]
        httpx.get(f"{stack.api2.url}/messages/outbound/{sent}/details", headers=server.headers)

        def lines_of_server() -> list[dict[str, Any]]:
            return [line for line in stack.api2.lines() if line.get("logger") == "postgate.access" and line.get("server_id") == server.id]

        until(lambda: len(lines_of_server()) >= 2)  # a line is written just after its response has left
        lines = lines_of_server()
        assert [(line["method"], line["route"], line["status"]) for line in lines] == [
            ("POST", "/email", 200),
            ("GET", "/messages/outbound/{message_id}/details", 200),
        ]
        assert all(isinstance(line["duration_ms"], float | int) for line in lines)


def text_of(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def smtp_message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ops@example.com"
    message["To"] = to
    message["Subject"] = "Over SMTP"
    message.set_content("Hello")
    return message


class TestSmtpGateway:
    def test_sessions_auth_failures_and_a_rate_limited_server(self, stack: Stack) -> None:
        server = new_server(stack.api.url, "smtp", SmtpApiActivated=True)
        before = scrape(stack.smtp_metrics)
        with smtplib.SMTP("127.0.0.1", stack.smtp.port, timeout=10) as bad:
            bad.ehlo()
            code, _ = bad.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0not-a-token\0not-a-token").decode())
            assert code == 535
        TOKENS.append(base64.b64encode(f"\0{server.token}\0{server.token}".encode()).decode())
        client = smtplib.SMTP("127.0.0.1", stack.smtp.port, timeout=10)
        client.ehlo()
        client.login(server.token, server.token)
        for i in range(BURST):
            client.send_message(smtp_message(f"r{i}@example.net"))
        with pytest.raises(smtplib.SMTPDataError) as over:
            client.send_message(smtp_message("over@example.net"))
        assert over.value.smtp_code == 451
        assert text_of(over.value.smtp_error).startswith("4.7.1 Rate limit exceeded")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(smtp_message("next@example.net"))
        assert refused.value.smtp_code == 421
        assert text_of(refused.value.smtp_error).startswith("4.7.0")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()

        def session_lines() -> list[dict[str, Any]]:
            return [line for line in stack.smtp.lines() if line.get("logger") == "postgate.smtp.session"]

        until(lambda: any(line["accepted"] == BURST for line in session_lines()))
        after = scrape(stack.smtp_metrics)
        for name, labels, delta in (
            ("postgate_smtp_sessions_total", {}, 2),
            ("postgate_smtp_auth_failures_total", {}, 1),
            ("postgate_smtp_messages_total", {"result": "accepted"}, BURST),
            ("postgate_smtp_messages_total", {"result": "rate_limited"}, 1),
        ):
            assert value(after, name, **labels) - value(before, name, **labels) == delta, name
        assert value(after, "postgate_smtp_accept_duration_seconds_count") >= BURST + 1
        failed = [line for line in session_lines() if line["auth"] == "failed"]
        assert failed
        assert (failed[-1]["auth_failures"], failed[-1]["messages"]) == (1, 0)
        limited = next(line for line in session_lines() if line["accepted"] == BURST)
        assert (limited["auth"], limited["rate_limited"], limited["result"]) == ("ok", 1, "refused")
        assert limited["peer"].startswith("127.0.0.1:")


class TestOutages:
    def test_a_worker_without_its_database_logs_each_loop_once_a_minute(self, tmp_path: Path) -> None:
        dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgate"
        worker = spawn("dead-worker", "api_service.worker", base_env(dead, WORKER_POLL_SECONDS="0.05"), tmp_path)
        try:
            until(lambda: len([line for line in worker.lines() if "database is unavailable" in line["message"]]) >= 2)
            time.sleep(2)  # ~40 more polls of each loop, each failing
        finally:
            stop(worker)
        failures = [line["message"] for line in worker.lines() if "database is unavailable" in line["message"]]
        loops = [message.split(":", 1)[0] for message in failures]
        assert {"worker delivery loop", "worker webhooks loop"} <= set(loops)
        assert len(loops) == len(set(loops))  # each loop said it once, not once per poll
        assert not [line for line in worker.lines() if "Traceback" in line.get("exc_info", "")]

    def test_a_gateway_that_loses_its_api_logs_refusals_once_a_minute(self, stack: Stack, tmp_path: Path) -> None:
        server = new_server(stack.api.url, "outage", SmtpApiActivated=True)
        relay = Relay(stack.api2.port)
        relay.start()
        port = free_port()
        env = base_env("postgresql://unused", SMTP_PORT=str(port), API_URL=f"http://127.0.0.1:{relay.port}", SMTP_AUTH_CACHE_SECONDS="60")
        gateway = spawn("cut-smtp", "smtp_service", env, tmp_path, port=port)
        try:
            wait_ready(gateway, time.monotonic() + 30)
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo()
                client.login(server.token, server.token)
                relay.cut()
                until(lambda: not relay._connections)  # the gateway's pooled connection to the API is gone too
                codes = []
                for i in range(10):
                    try:
                        client.send_message(smtp_message(f"r{i}@example.net"))
                    except smtplib.SMTPDataError as exc:
                        codes.append(exc.smtp_code)
                assert codes == [451] * 10
        finally:
            stop(gateway)
            relay.stop()
        warnings = [line for line in gateway.lines() if "answered" in line["message"]]
        assert len(warnings) == 1
        sessions = [line for line in gateway.lines() if line.get("logger") == "postgate.smtp.session" and line["auth"] == "ok"]
        assert [(line["deferred"], line["accepted"]) for line in sessions] == [(10, 0)]


def test_no_log_line_holds_a_token_or_a_password(stack: Stack) -> None:
    """Last: every secret this module used, looked for in every process' log (at DEBUG level)."""
    assert len(TOKENS) > 5
    for proc in stack.procs:
        content = proc.log.read_text(errors="replace")
        assert content, proc.name
        for secret in TOKENS:
            assert secret not in content, f"{proc.name} logged a secret"
