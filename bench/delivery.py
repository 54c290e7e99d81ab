"""Delivery, webhooks and scaling: queues drained by real worker processes to local peers."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
import psutil
from sqlalchemy import text

from api_service.db import create_engine
from bench.loadgen import encode_request, run_load
from bench.procs import Meter, Service, free_port, postgres_processes, start
from bench.rest import MESSAGE, Row, measured

ACCOUNT = "bench-account-token"


async def _sql(url: str, statement: str, params: dict[str, Any] | None = None) -> Any:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params or {})
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


def sql(url: str, statement: str, params: dict[str, Any] | None = None) -> Any:
    return asyncio.run(_sql(url, statement, params))


def _server(api_url: str) -> tuple[int, str]:
    created = httpx.post(
        f"{api_url}/servers", json={"Name": f"bench-delivery-{time.time_ns()}"}, headers={"X-Postmark-Account-Token": ACCOUNT}
    )
    created.raise_for_status()
    httpx.post(
        f"{api_url}/senders", json={"FromEmail": "bench@bench.example", "Name": "Bench"}, headers={"X-Postmark-Account-Token": ACCOUNT}
    )
    return created.json()["ID"], created.json()["ApiTokens"][0]


def _queue(api_url: str, token: str, count: int) -> None:
    with httpx.Client(base_url=api_url, headers={"X-Postmark-Server-Token": token}, timeout=120) as client:
        for start_at in range(0, count, 500):
            batch = [dict(MESSAGE, To=f"r{start_at + i}@example.net") for i in range(min(500, count - start_at))]
            client.post("/email/batch", json=batch).raise_for_status()


def _workers(n: int, database_url: str, sink_port: int) -> list[Service]:
    env = {
        "DATABASE_URL": database_url,
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{sink_port}",
        "DELIVERY_CONCURRENCY": "50",
        "DELIVERY_BATCH_SIZE": "200",
        "WORKER_POLL_SECONDS": "0.05",
        # The webhook receiver listens on loopback, which webhooks may not reach unless allowed.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    return [start(f"worker{i}", ["-m", "api_service.worker"], env) for i in range(n)]


def _wait(url: str, statement: str, target: int, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if (sql(url, statement) or 0) >= target:
            break
        time.sleep(0.1)
    return time.perf_counter() - started


def _drain(
    name: str,
    *,
    database_url: str,
    api_url: str,
    sink: Service,
    sink_port: int,
    server_id: int,
    token: str,
    count: int,
    workers: int,
    timeout: float,
) -> Row:
    _queue(api_url, token, count)
    done = f"SELECT count(*) FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.server_id = {server_id} AND r.status = 'delivered'"
    before = sql(database_url, done) or 0
    procs = _workers(workers, database_url, sink_port)
    try:
        groups = {"worker": [p.tree()[0] for p in procs], "postgres": postgres_processes(), "sink": [sink.tree()[0]]}
        with Meter(groups) as meter:
            seconds = _wait(database_url, done, before + count, timeout)
        delivered = (sql(database_url, done) or 0) - before
    finally:
        for proc in procs:
            proc.stop()
    return measured(name, workers, messages=delivered, seconds=seconds, meter=meter, errors=count - delivered)


def _latency(*, database_url: str, api_url: str, sink_port: int, server_id: int, token: str, rate: int, seconds: float) -> Row:
    procs = _workers(1, database_url, sink_port)
    try:
        time.sleep(1.0)
        started = time.perf_counter()
        sent = 0
        with httpx.Client(base_url=api_url, headers={"X-Postmark-Server-Token": token}) as client:
            while time.perf_counter() - started < seconds:
                client.post("/email", json=dict(MESSAGE, To="latency@example.net", Tag="latency")).raise_for_status()
                sent += 1
                time.sleep(max(0.0, sent / rate - (time.perf_counter() - started)))
        done = f"SELECT count(*) FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.server_id = {server_id} AND m.tag = 'latency' AND r.status = 'delivered'"
        _wait(database_url, done, sent, 30)
        values = sql(
            database_url,
            "SELECT json_agg(extract(epoch FROM r.delivered_at - m.created_at) ORDER BY 1) FROM message_recipients r "
            f"JOIN messages m ON m.id = r.message_id WHERE m.server_id = {server_id} AND m.tag = 'latency' AND r.status = 'delivered'",
        )
    finally:
        for proc in procs:
            proc.stop()
    latencies = sorted(json.loads(values) if isinstance(values, str) else (values or []))

    def p(q):
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000 if latencies else 0.0

    return Row(
        scenario=f"Accept → delivered latency ({rate} msg/s offered)",
        concurrency=1,
        messages=len(latencies),
        seconds=seconds,
        rate=len(latencies) / seconds,
        p50_ms=p(0.5),
        p99_ms=p(0.99),
        cpu_per_msg_ms={},
        peak_rss_mb={},
        errors=sent - len(latencies),
    )


def _webhooks(*, database_url: str, sink_port: int, server_id: int, count: int, timeout: float) -> Row:
    port = free_port()
    receiver = start("receiver", ["-m", "bench.receiver", str(port)], {}, port=port)
    try:
        sql(
            database_url,
            "INSERT INTO webhook_deliveries (server_id, record_type, url, http_auth_username, http_auth_password, http_headers, payload, status, attempts, next_attempt_at, last_error) "
            "SELECT :server, 'Bounce', :url, '', '', '[]', json_build_object('RecordType', 'Bounce', 'ID', g, 'Email', 'x@example.net'), 'pending', 0, now(), '' "
            "FROM generate_series(1, :count) g",
            {"server": server_id, "url": f"http://127.0.0.1:{port}/hook", "count": count},
        )
        done = f"SELECT count(*) FROM webhook_deliveries WHERE server_id = {server_id} AND status = 'delivered'"
        procs = _workers(1, database_url, sink_port)
        try:
            groups = {"worker": [p.tree()[0] for p in procs], "postgres": postgres_processes(), "receiver": [receiver.tree()[0]]}
            with Meter(groups) as meter:
                seconds = _wait(database_url, done, count, timeout)
            delivered = sql(database_url, done) or 0
        finally:
            for proc in procs:
                proc.stop()
    finally:
        receiver.stop()
    return measured("Webhooks delivered", 1, messages=delivered, seconds=seconds, meter=meter, errors=count - delivered)


def _sizes(*, api_url: str, port: int, token: str, quick: bool, api: Service) -> list[Row]:
    rows = []
    for label, size, total in (
        ("2 KB", 2_000, 200 if quick else 3000),
        ("100 KB", 100_000, 50 if quick else 1000),
        ("5 MB", 5_000_000, 4 if quick else 40),
    ):
        body = json.dumps(dict(MESSAGE, TextBody="x" * size, HtmlBody=None)).encode()
        request = encode_request(
            "POST", "/email", f"127.0.0.1:{port}", {"Content-Type": "application/json", "X-Postmark-Server-Token": token}, body
        )
        with Meter({"api": [api.tree()[0]], "postgres": postgres_processes(), "loadgen": [psutil.Process()]}) as meter:
            result = asyncio.run(run_load(host="127.0.0.1", port=port, request=request, concurrency=4, total=total, max_seconds=30))
        rows.append(
            measured(
                f"REST /email, {label} body",
                4,
                messages=result.requests,
                seconds=result.seconds,
                meter=meter,
                errors=result.errors,
                result=result,
            )
        )
    return rows


def run(*, database_url: str, quick: bool) -> list[Row]:
    api_port, sink_port = free_port(), free_port()
    api = start(
        "api-queue",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": ACCOUNT, "API_PORT": str(api_port), "API_WORKERS": "1"},
        health_url=f"http://127.0.0.1:{api_port}/health",
    )
    sink = start("sink", ["-m", "bench.sink", str(sink_port)], {}, port=sink_port)
    api_url = f"http://127.0.0.1:{api_port}"
    count = 200 if quick else 10_000
    timeout = 60 if quick else 300
    rows: list[Row] = []
    try:
        for workers in (1, 2):
            server_id, token = _server(api_url)
            rows.append(
                _drain(
                    "Delivery to a local sink",
                    database_url=database_url,
                    api_url=api_url,
                    sink=sink,
                    sink_port=sink_port,
                    server_id=server_id,
                    token=token,
                    count=count,
                    workers=workers,
                    timeout=timeout,
                )
            )
        server_id, token = _server(api_url)
        rows.append(
            _latency(
                database_url=database_url,
                api_url=api_url,
                sink_port=sink_port,
                server_id=server_id,
                token=token,
                rate=20 if quick else 50,
                seconds=2 if quick else 10,
            )
        )
        server_id, _ = _server(api_url)
        rows.append(
            _webhooks(database_url=database_url, sink_port=sink_port, server_id=server_id, count=200 if quick else 5000, timeout=timeout)
        )
        depth = 1_000 if quick else 100_000
        server_id, token = _server(api_url)
        _queue(api_url, token, 1)
        sql(
            database_url,
            "INSERT INTO message_recipients (message_id, email, kind, status, attempts, next_attempt_at, last_response, created_at) "
            "SELECT m.id, 'parked' || g || '@example.net', 'to', 'deferred', 1, now() + interval '1 day', '', now() "
            f"FROM generate_series(1, {depth}) g, (SELECT id FROM messages WHERE server_id = {server_id} LIMIT 1) m",
        )
        server_id, token = _server(api_url)
        rows.append(
            _drain(
                f"Delivery with {depth:,} rows parked in the queue",
                database_url=database_url,
                api_url=api_url,
                sink=sink,
                sink_port=sink_port,
                server_id=server_id,
                token=token,
                count=count,
                workers=1,
                timeout=timeout,
            )
        )
        server_id, token = _server(api_url)
        rows += _sizes(api_url=api_url, port=api_port, token=token, quick=quick, api=api)
    finally:
        sink.stop()
        api.stop()
    return rows


def soak(*, database_url: str, seconds: float) -> dict[str, Any]:
    """REST sends at 16 clients for `seconds`; the API's RSS after warm-up and at the end."""
    port = free_port()
    api = start(
        "api-soak",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": ACCOUNT, "API_PORT": str(port), "API_WORKERS": "1"},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        _, token = _server(f"http://127.0.0.1:{port}")
        request = encode_request(
            "POST",
            "/email",
            f"127.0.0.1:{port}",
            {"Content-Type": "application/json", "X-Postmark-Server-Token": token},
            json.dumps(MESSAGE).encode(),
        )
        samples: list[tuple[float, float]] = []
        started = time.perf_counter()
        proc = api.tree()[0]
        sent = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            result = asyncio.run(
                run_load(
                    host="127.0.0.1", port=port, request=request, concurrency=16, total=10**9, max_seconds=min(10.0, seconds - elapsed)
                )
            )
            sent += result.requests
            samples.append((time.perf_counter() - started, proc.memory_info().rss / 2**20))
    finally:
        api.stop()
    warm = [rss for t, rss in samples if t >= min(60.0, seconds / 4)] or [rss for _, rss in samples]
    return {
        "seconds": seconds,
        "messages": sent,
        "rss_after_warmup_mb": warm[0],
        "rss_end_mb": warm[-1],
        "rss_max_mb": max(warm),
        "samples": len(samples),
        "pid": os.getpid(),
    }
