"""SMTP accept: authenticated sessions, reused and one per message, beside a no-op aiosmtpd ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from email.message import EmailMessage

import aiosmtplib
import httpx
import psutil

from bench.loadgen import LoadResult
from bench.procs import Meter, free_port, postgres_processes, start
from bench.rest import Row, measured

# Every message gets its own Message-ID, as real clients send: the same bytes to the same
# recipients again are a retry, which the API answers from its idempotency record without storing.
ID_PLACEHOLDER = b"bench-0000000000000000"


def _unique(template: bytes, number: int) -> bytes:
    return template.replace(ID_PLACEHOLDER, b"bench-%016d" % number, 1)


def _message() -> bytes:
    message = EmailMessage()
    message["From"] = "Bench <bench@bench.example>"
    message["To"] = "ann@example.net, bob@example.net"
    message["Subject"] = "Your order has shipped"
    message["X-PM-Tag"] = "shipping"
    message["Message-ID"] = f"<{ID_PLACEHOLDER.decode()}@bench.example>"
    message.set_content("Hello Ann,\n\nyour order #1234 has shipped.\n" * 20)
    message.add_alternative("<p>Hello Ann,</p><p>your order has shipped.</p>" * 20, subtype="html")
    return message.as_bytes()


async def _load(*, port: int, token: str, concurrency: int, seconds: float, total: int, reuse: bool) -> LoadResult:
    template = _message()
    sent = time.time_ns() // 1000  # each run numbers its messages afresh (16 digits until 2286)
    result = LoadResult(requests=0, errors=0, seconds=0.0)
    remaining = total
    deadline = time.perf_counter() + seconds

    async def connect() -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        await client.login(token, token)
        return client

    async def worker() -> None:
        nonlocal remaining, sent
        client = await connect() if reuse else None
        try:
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                sent += 1
                data = _unique(template, sent)
                started = time.perf_counter()
                if client is None:
                    one = await connect()
                    try:
                        _, reply = await one.sendmail("bench@bench.example", ["ann@example.net", "bob@example.net"], data)
                    finally:
                        await one.quit()
                else:
                    _, reply = await client.sendmail("bench@bench.example", ["ann@example.net", "bob@example.net"], data)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                if not reply.startswith("2.0.0"):
                    result.errors += 1
        except aiosmtplib.SMTPException:
            result.errors += 1
            if client is not None:
                client.close()
                client = None
        finally:
            if client is not None and client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException):
                    await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def _row(name: str, concurrency: int, result: LoadResult, meter: Meter) -> Row:
    return measured(name, concurrency, messages=result.requests, seconds=result.seconds, meter=meter, errors=result.errors, result=result)


def run(*, database_url: str, quick: bool) -> list[Row]:
    seconds = 1.5 if quick else 10.0
    total = 60 if quick else 1_000_000
    cases = [(16, True), (64, True), (16, False)] if not quick else [(4, True), (4, False)]
    workers = "1" if quick else str(max(1, os.cpu_count() or 1))
    api_port, smtp_port, noop_port = free_port(), free_port(), free_port()
    account = "bench-account-token"
    api = start(
        "api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(api_port), "API_WORKERS": workers},
        health_url=f"http://127.0.0.1:{api_port}/health",
    )
    rows: list[Row] = []
    try:
        created = httpx.post(
            f"http://127.0.0.1:{api_port}/servers",
            json={"Name": f"bench-smtp-{os.getpid()}", "SmtpApiActivated": True},
            headers={"X-Postmark-Account-Token": account},
        )
        created.raise_for_status()
        token = created.json()["ApiTokens"][0]
        httpx.post(
            f"http://127.0.0.1:{api_port}/senders",
            json={"FromEmail": "bench@bench.example", "Name": "Bench"},
            headers={"X-Postmark-Account-Token": account},
        )
        gateway = start(
            "smtp", ["-m", "smtp_service"], {"SMTP_PORT": str(smtp_port), "API_URL": f"http://127.0.0.1:{api_port}"}, port=smtp_port
        )
        try:
            for concurrency, reuse in cases:
                groups = {
                    "api": [api.tree()[0]],
                    "smtp": [gateway.tree()[0]],
                    "postgres": postgres_processes(),
                    "loadgen": [psutil.Process()],
                }
                with Meter(groups) as meter:
                    result = asyncio.run(
                        _load(port=smtp_port, token=token, concurrency=concurrency, seconds=seconds, total=total, reuse=reuse)
                    )
                rows.append(
                    _row("SMTP accept, " + ("reused connections" if reuse else "connection per message"), concurrency, result, meter)
                )
        finally:
            gateway.stop()
    finally:
        api.stop()
    noop = start("noop-smtp", ["-m", "bench.noop_smtp", str(noop_port)], {}, port=noop_port)
    try:
        for row, (concurrency, reuse) in zip(rows, cases, strict=True):
            result = asyncio.run(_load(port=noop_port, token="same", concurrency=concurrency, seconds=seconds, total=total, reuse=reuse))
            row.ceiling_rate = result.rate
    finally:
        noop.stop()
    return rows
