"""Retention: an aged database, filled in SQL, and (`python -m bench.retention`) REST /email
throughput with and without the worker's purge running on it.

`populate` is also what tests/e2e/test_retention.py purges: every row's age follows from its number
`g` in `generate_series`, so what must go and what must stay is known without reading it back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from dataclasses import dataclass

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from api_service.db import async_database_url
from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, with_database
from bench.loadgen import encode_request, run_load
from bench.procs import Meter, Service, free_port, postgres_processes, start
from bench.rest import MESSAGE, Row, measured

# Row g of a table is (g % 90) days and 12 hours old: with 90 ages per cycle, a retention of D days
# keeps the rows whose g % 90 < D. Every 97th message with g % 90 >= 60 still has a recipient
# waiting for a retry (tomorrow): queued mail is never expired, however old.
AGE = "now() - make_interval(hours => (g % 90) * 24 + 12)"
WAITING = "(g % 97 = 0 AND g % 90 >= 60)"
MESSAGE_ID = "('00000000-0000-4000-8000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"
INBOUND_ID = "('00000000-0000-4000-9000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"
BULK_ID = "('00000000-0000-4000-a000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"

STATEMENTS = (
    f"""
    INSERT INTO messages (id, server_id, message_stream, source, status, from_header, from_email, envelope_from, subject, tag,
                          "to", cc, bcc, recipients, metadata, attachments, track_opens, track_links, sandboxed,
                          list_unsubscribe, tracked_links, raw_mime, created_at)
    SELECT {MESSAGE_ID}, CAST(:sid AS bigint), 'outbound', 'api', 'Sent', 'Aged <aged@example.com>', 'aged@example.com', '', 'Aged ' || g, 'aged',
           '[{{"Email": "r@example.net", "Name": ""}}]', '[]', '[]', ARRAY['r' || g || '@example.net'], '{{}}', '{{}}', false, 'None',
           false, false, 0, convert_to('Subject: Aged ' || g || E'\\r\\n\\r\\n' || repeat('x', 300), 'UTF8'), {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_recipients (message_id, email, kind, status, attempts, last_response, next_attempt_at, delivered_at, created_at)
    SELECT {MESSAGE_ID}, 'r' || g || '@example.net', 'to', CASE WHEN {WAITING} THEN 'deferred' ELSE 'delivered' END, 1, '250 2.0.0 Ok',
           CASE WHEN {WAITING} THEN now() + interval '1 day' END, CASE WHEN NOT {WAITING} THEN {AGE} END, {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_events (message_id, recipient, type, details, created_at)
    SELECT {MESSAGE_ID}, 'r' || g || '@example.net', 'Delivered', '{{"DeliveryMessage": "250 2.0.0 Ok"}}', {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_opens (server_id, message_id, message_stream, tag, recipient, first_open, user_agent, client_name, client_company,
                               client_family, os_name, os_company, os_family, platform, read_seconds, ip, country, region, city, created_at)
    SELECT CAST(:sid AS bigint), {MESSAGE_ID}, 'outbound', 'aged', 'r' || g || '@example.net', true, 'UA', '', '', '', '', '', '', 'Desktop', 3, '', '', '', '',
           {AGE}
      FROM generate_series(10, CAST(:n AS integer), 10) AS g
    """,
    f"""
    INSERT INTO bounces (server_id, message_stream, type, type_code, email, from_email, subject, tag, details, inactive, can_activate, bounced_at)
    SELECT CAST(:sid AS bigint), 'outbound', 'HardBounce', 1, 'b' || g || '@example.net', 'aged@example.com', '', '', 'smtp;550 no such user', true, true, {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 10) AS g
    """,
    f"""
    INSERT INTO bounce_dumps (server_id, body, created_at)
    SELECT CAST(:sid AS bigint), convert_to('Subject: DSN ' || g, 'UTF8'), {AGE} FROM generate_series(1, CAST(:n AS integer) / 20) AS g
    """,
    # One in three webhook requests is still pending (its next attempt tomorrow): it stays.
    f"""
    INSERT INTO webhook_deliveries (server_id, record_type, url, http_auth_username, http_auth_password, http_headers, payload, status,
                                    attempts, next_attempt_at, last_error, created_at)
    SELECT CAST(:sid AS bigint), 'Delivery', 'https://hooks.example.com/d', '', '', '[]', '{{}}',
           (ARRAY['pending', 'delivered', 'failed'])[g % 3 + 1], 1, now() + interval '1 day', '', {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 4) AS g
    """,
    # One in five inbound messages still waits for its hook (Queued): it stays.
    f"""
    INSERT INTO inbound_messages (id, server_id, message_stream, status, blocked_reason, envelope_from, original_recipient, from_email,
                                  recipients, subject, mailbox_hash, tag, details, raw_mime, created_at)
    SELECT {INBOUND_ID}, CAST(:sid AS bigint), 'inbound', CASE WHEN g % 5 = 0 THEN 'Queued' ELSE 'Processed' END, '', 'in@example.org', 'x@inbound.test',
           'in@example.org', '{{}}', 'In ' || g, '', '', '{{}}', convert_to('Subject: In ' || g, 'UTF8'), {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 8) AS g
    """,
    f"""
    INSERT INTO bulk_requests (id, server_id, status, message_stream, content, total, position, released, failed, progressed_at, completed_at,
                               created_at)
    SELECT {BULK_ID}, CAST(:sid AS bigint), 'Completed', 'outbound', '{{}}', 1, 1, 1, 0, {AGE}, {AGE}, {AGE} FROM generate_series(1, CAST(:n AS integer) / 100) AS g
    """,
    # Idempotency keys are g % 48 hours and 30 minutes old: those of 24 hours or more are past the window.
    """
    INSERT INTO idempotency_keys (server_id, endpoint, key, request_sha256, response_status, created_at)
    SELECT CAST(:sid AS bigint), 'email', 'aged-' || g, repeat('0', 64), 200, now() - make_interval(hours => g % 48, mins => 30)
      FROM generate_series(1, CAST(:n AS integer) / 4) AS g
    """,
    # Suppressions are not expired by retention (Postmark keeps them until reactivated).
    f"""
    INSERT INTO suppressions (server_id, message_stream, email, reason, origin, created_at)
    SELECT CAST(:sid AS bigint), 'outbound', 's' || g || '@example.net', 'HardBounce', 'Recipient', {AGE} FROM generate_series(1, 50) AS g
    """,
)


@dataclass(frozen=True, slots=True)
class Kept:
    """What retention of `days` leaves of one server's `populate(n)` rows."""

    messages: int
    waiting: int  # expired by age, kept because a recipient is still queued
    bounces: int
    dumps: int
    webhooks: int
    inbound: int
    bulk: int
    keys: int


def kept(*, n: int, days: int) -> Kept:
    def young(g: int) -> bool:
        return g % 90 < days

    waiting = sum(1 for g in range(1, n + 1) if g % 97 == 0 and g % 90 >= 60 and not young(g))
    return Kept(
        messages=sum(1 for g in range(1, n + 1) if young(g)) + waiting,
        waiting=waiting,
        bounces=sum(1 for g in range(1, n // 10 + 1) if young(g)),
        dumps=sum(1 for g in range(1, n // 20 + 1) if young(g)),
        webhooks=sum(1 for g in range(1, n // 4 + 1) if young(g) or g % 3 == 0),
        inbound=sum(1 for g in range(1, n // 8 + 1) if young(g) or g % 5 == 0),
        bulk=sum(1 for g in range(1, n // 100 + 1) if young(g)),
        keys=sum(1 for g in range(1, n // 4 + 1) if g % 48 < 24),
    )


def rows_per_server(n: int) -> int:
    """How many rows `populate` writes for one server."""
    return 3 * n + n // 10 + n // 10 + n // 20 + n // 4 + n // 8 + n // 100 + n // 4 + 50


async def populate(conn: AsyncConnection, *, server_ids: list[int], n: int) -> None:
    """`n` messages per server (with a recipient and an event each, an open for one in ten) spread
    over 90 days, and bounces, dumps, webhook requests, inbound messages, bulk requests and
    idempotency keys in proportion; then ANALYZE, as autovacuum would after a load this size."""
    for server_id in server_ids:
        for statement in STATEMENTS:
            await conn.execute(text(statement), {"sid": server_id, "n": n})
    await conn.execute(text("ANALYZE"))


# --- the benchmark -------------------------------------------------------------------------------

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
