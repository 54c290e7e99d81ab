"""`python -m bench.retention [--quick]`: REST /email throughput on an aged database (bench/aged.py),
with the worker idle and with its retention purge running; also the `retention` group of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from api_service.db import async_database_url
from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, with_database
from bench.aged import populate, rows_per_server
from bench.loadgen import encode_request, run_load
from bench.procs import Meter, Service, free_port, postgres_processes, start
from bench.rest import MESSAGE, Row, measured

EXPIRED = "SELECT count(*) FROM messages WHERE subject LIKE 'Aged %' AND created_at < now() - interval '45 days'"


async def _scalar(database_url: str, sql: str) -> int:
    engine = create_async_engine(async_database_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


async def _populate(database_url: str, *, server_ids: list[int], n: int) -> None:
    engine = create_async_engine(async_database_url(database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await populate(conn, server_ids=server_ids, n=n)
    finally:
        await engine.dispose()


def _worker(database_url: str, *, days: int, relay_port: int) -> Service:
    # The fresh mail goes to a closed port: each attempt fails at once and is deferred, the same
    # work in both phases, so that only the purge differs.
    env = {
        "DATABASE_URL": database_url,
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{relay_port}",
        "RETENTION_DAYS": str(days),
        "RETENTION_INTERVAL_SECONDS": "1",
        "DELIVERY_CONCURRENCY": "4",  # a small pool: the PostgreSQL may be shared
    }
    return start("retention-worker", ["-m", "api_service.worker"], env)


def run(*, database_url: str, quick: bool) -> list[Row]:
    """REST /email at 16 clients on an aged database, with the worker idle, then with it purging."""
    n = 2_000 if quick else 100_000
    seconds = 1.5 if quick else 10.0
    concurrency = 16
    port, relay_port = free_port(), free_port()
    account = "bench-account-token"
    api = start(
        "api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(port), "API_WORKERS": "1"},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    rows: list[Row] = []
    try:
        admin = {"X-Postmark-Account-Token": account}
        servers = [httpx.post(f"http://127.0.0.1:{port}/servers", json={"Name": f"aged-{i}"}, headers=admin).json() for i in (1, 2)]
        httpx.post(f"http://127.0.0.1:{port}/senders", json={"FromEmail": "bench@bench.example", "Name": "Bench"}, headers=admin)
        asyncio.run(_populate(database_url, server_ids=[s["ID"] for s in servers], n=n))
        request = encode_request(
            "POST",
            "/email",
            f"127.0.0.1:{port}",
            {"Content-Type": "application/json", "X-Postmark-Server-Token": servers[0]["ApiTokens"][0]},
            json.dumps(MESSAGE).encode(),
        )
        groups = {"api": api.tree(), "postgres": postgres_processes(), "loadgen": [psutil.Process()]}

        def measure(name: str) -> Row:
            with Meter(groups) as meter:
                result = asyncio.run(
                    run_load(host="127.0.0.1", port=port, request=request, concurrency=concurrency, total=10_000_000, max_seconds=seconds)
                )
            return measured(
                name, concurrency, messages=result.requests, seconds=result.seconds, meter=meter, errors=result.errors, result=result
            )

        idle = _worker(database_url, days=3650, relay_port=relay_port)  # nothing is old enough to purge
        try:
            rows.append(measure(f"Retention: REST /email on {2 * rows_per_server(n):,} aged rows, no purge"))
        finally:
            idle.stop()
        expired = asyncio.run(_scalar(database_url, EXPIRED))
        purging = _worker(database_url, days=45, relay_port=relay_port)
        try:
            deadline = time.monotonic() + 60
            while asyncio.run(_scalar(database_url, EXPIRED)) == expired and time.monotonic() < deadline:
                time.sleep(0.1)
            before = asyncio.run(_scalar(database_url, EXPIRED))
            started = time.monotonic()
            rows.append(measure(f"Retention: REST /email on {2 * rows_per_server(n):,} aged rows, purge running"))
            elapsed = time.monotonic() - started
            purged = before - asyncio.run(_scalar(database_url, EXPIRED))
            # Expired messages deleted (each with a recipient and an event) while the sends ran.
            rows.append(
                Row(
                    scenario="Retention: messages purged while sending (each with a recipient, an event)",
                    concurrency=1,
                    messages=purged,
                    seconds=elapsed,
                    rate=purged / elapsed if elapsed else 0.0,
                    p50_ms=0.0,
                    p99_ms=0.0,
                    cpu_per_msg_ms={},
                    peak_rss_mb={},
                    errors=0,
                )
            )
        finally:
            purging.stop()
    finally:
        api.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention")
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    url = with_database(base, f"postgate_bench_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    try:
        for row in run(database_url=url, quick=args.quick):
            print(
                f"| {row.scenario} | {row.concurrency} | {row.messages:,} | {row.rate:,.0f} | {row.p50_ms:.1f} | {row.p99_ms:.1f} | {row.errors} |"
            )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
