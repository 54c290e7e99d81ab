"""`python -m bench.datascale --messages N`: the read paths on 45 days of data; also the optional
`datascale` group of `python -m bench` (`--only datascale`).

A fresh database is filled with N messages (with their recipient rows, about two events each, opens,
clicks, bounces and suppressions) spread over 45 days and three servers (70/20/10 %), then ANALYZEd;
then one client measures, warm, the read paths support staff and dashboards use through the real API
over HTTP: the message search (first page, by recipient, tag + status, subject, date range), a
message's details, the stats, the bounce search and the console's activity page, signed in.

The rows are generated inside PostgreSQL (`INSERT … SELECT FROM generate_series`, a million messages
per round): nothing crosses the wire, which on a shared two-core box is faster than building tens of
millions of tuples in Python for COPY. Every value follows from the message's number `g`, so the
distributions are fixed from run to run:

- recipients: ~500,000 people, skewed (person `p = 500000 · u²` for a uniform `u`), so some
  addresses get thousands of messages and most a few; one message in ten also has a Cc;
- tags: seven, one message in four without; subjects from templates carrying order, invoice and
  week numbers; the newest 0.1 % still Queued;
- events per recipient: Delivered (Bounced for one in 33), Transient for one in five, Opened for
  one in two, LinkClicked for one in seven (≈ 2 per message), with their opens and clicks rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]
import httpx

from api_service.devtools.embedded_db import _connect_kwargs, drop_database, ensure_database, migrate, with_database
from bench import report
from bench.procs import ROOT, free_port, start
from bench.rest import Row

RESULTS = ROOT / "bench" / "RESULTS.md"
ROUND = 1_000_000
DAYS = 45
REQUESTS = 30
MAX_SECONDS = 60.0  # per endpoint: a path that takes seconds is measured with fewer requests, and says so

FIRST = "ARRAY['ann','bob','carla','dmitri','emma','farid','grace','hiro','ines','jamal','kate','li','maria','nils','olga','pedro','quinn','rosa','sam','tomas']"
LAST = "ARRAY['smith','jones','garcia','muller','rossi','kim','nguyen','silva','novak','cohen','patel','berg','dubois','ivanov','sato','lopez','weber','brown','wilson','moreau','kowalski','haddad','tanaka','olsen','costa']"
DOMAINS = "ARRAY['gmail.com','yahoo.com','outlook.com','hotmail.com','icloud.com','acme-corp.com','example.org','mail.de']"
TAGS = "ARRAY['','welcome','password-reset','receipt','shipping','invoice','newsletter','','digest','']"
SUBJECTS = (
    "(ARRAY['Your order #' || (g % 900000 + 100000) || ' has shipped', 'Reset your password', 'Welcome to Acme, ' || first_name,"
    " 'Your receipt for order #' || (g % 900000 + 100000), 'Invoice INV-' || lpad((g % 1000000)::text, 7, '0'),"
    " 'Acme weekly – week ' || (g % 52 + 1), 'Your Acme digest', 'Your Acme account'])[g % 8 + 1]"
)

# One row per message number g in [lo, hi): its server, time, addresses, tag and subject.
BASE = f"""
SELECT g, p, first_name,
       ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid AS id,
       (CAST(:sids AS bigint[]))[CASE WHEN g % 10 < 7 THEN 1 WHEN g % 10 < 9 THEN 2 ELSE 3 END] AS sid,
       now() - make_interval(secs => (CAST(:n AS integer) - g) * {DAYS} * 86400.0::float8 / CAST(:n AS integer)) AS created,
       first_name || '.' || ({LAST})[(p / 20) % 25 + 1] || (p / 500) || '@' || ({DOMAINS})[(p * 7) % 8 + 1] AS to_addr,
       CASE WHEN g % 10 = 3 THEN 'cc' || (p % 997) || '@' || ({DOMAINS})[(p * 3) % 8 + 1] END AS cc_addr,
       ({TAGS})[(g / 10 * 7) % 10 + 1] AS tag,
       g > CAST(:n AS integer) - CAST(:n AS integer) / 1000 AS queued
  FROM (SELECT g, p, ({FIRST})[p % 20 + 1] AS first_name
          FROM (SELECT g, floor(500000 * power(((g * 2654435761) % 4294967291)::float8 / 4294967291.0, 2))::int AS p
                  FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer) - 1) AS g) AS u) AS s
"""

RECIPIENTS = "SELECT b.*, r.email, r.kind FROM base b CROSS JOIN LATERAL (VALUES (b.to_addr, 'to'), (b.cc_addr, 'cc')) AS r(email, kind) WHERE r.email IS NOT NULL"

STATEMENTS = (
    f"""
    WITH base AS ({BASE})
    INSERT INTO messages (id, server_id, message_stream, source, status, from_header, from_email, envelope_from, subject, tag,
                          "to", cc, bcc, recipients, metadata, attachments, track_opens, track_links, sandboxed,
                          list_unsubscribe, tracked_links, raw_mime, created_at)
    SELECT id, sid, 'outbound', CASE WHEN g % 4 = 0 THEN 'smtp' ELSE 'api' END, CASE WHEN queued THEN 'Queued' ELSE 'Sent' END,
           'Acme <notifications@acme.example>', 'notifications@acme.example', 'pm_bounces@acme.example', {SUBJECTS}, tag,
           jsonb_build_array(jsonb_build_object('Email', to_addr, 'Name', initcap(first_name))),
           CASE WHEN cc_addr IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object('Email', cc_addr, 'Name', '')) END,
           '[]', CASE WHEN cc_addr IS NULL THEN ARRAY[to_addr] ELSE ARRAY[to_addr, cc_addr] END,
           jsonb_build_object('customer', (p % 100000)::text), '{{}}', g % 3 <> 0, CASE WHEN g % 2 = 0 THEN 'HtmlAndText' ELSE 'None' END,
           false, false, CASE WHEN g % 2 = 0 THEN 3 ELSE 0 END,
           convert_to('From: Acme <notifications@acme.example>' || E'\\r\\nTo: ' || to_addr || E'\\r\\nSubject: ' || {SUBJECTS}
                      || E'\\r\\nContent-Type: text/plain; charset=utf-8\\r\\n\\r\\nHello ' || initcap(first_name)
                      || E',\\r\\n\\r\\nthanks for being with Acme.\\r\\n', 'UTF8'),
           created
      FROM base
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO message_recipients (message_id, email, kind, status, attempts, last_response, next_attempt_at, delivered_at, created_at)
    SELECT id, email, kind,
           CASE WHEN queued THEN 'queued' WHEN g % 33 = 0 THEN 'bounced' ELSE 'delivered' END, CASE WHEN queued THEN 0 ELSE 1 END,
           CASE WHEN queued THEN '' ELSE '250 2.0.0 Ok: queued' END,
           CASE WHEN queued THEN now() + interval '1 day' END, CASE WHEN NOT queued THEN created + interval '2 seconds' END, created
      FROM ({RECIPIENTS}) AS r
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO message_events (message_id, recipient, type, details, created_at)
    SELECT id, email, e.type, e.details, created + e.after
      FROM ({RECIPIENTS}) AS r
     CROSS JOIN LATERAL (VALUES
           ('Delivered', '{{"DeliveryMessage": "250 2.0.0 Ok: queued"}}'::jsonb, interval '2 seconds', NOT queued AND g % 33 <> 0),
           ('Bounced', '{{"Summary": "550 5.1.1 no such user"}}'::jsonb, interval '3 seconds', NOT queued AND g % 33 = 0),
           ('Transient', '{{"Summary": "451 4.7.1 try again later"}}'::jsonb, interval '1 second', g % 5 = 1),
           ('Opened', '{{}}'::jsonb, interval '1 hour', NOT queued AND g % 2 = 0 AND kind = 'to'),
           ('LinkClicked', '{{}}'::jsonb, interval '70 minutes', NOT queued AND g % 7 = 0 AND kind = 'to')) AS e(type, details, after, happened)
     WHERE e.happened
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO message_opens (server_id, message_id, message_stream, tag, recipient, first_open, user_agent, client_name, client_company,
                               client_family, os_name, os_company, os_family, platform, read_seconds, ip, country, region, city, created_at)
    SELECT sid, id, 'outbound', tag, to_addr, true, 'Mozilla/5.0', '', '', (ARRAY['Gmail','Apple Mail','Outlook','Thunderbird'])[g % 4 + 1],
           '', '', '', (ARRAY['Desktop','Mobile','WebMail','Unknown'])[(g / 2) % 4 + 1], g % 25, '192.0.2.1', '', '', '', created + interval '1 hour'
      FROM base WHERE NOT queued AND g % 2 = 0
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO message_clicks (server_id, message_id, message_stream, tag, recipient, first_click, click_location, original_link, link_sha256,
                                user_agent, client_name, client_company, client_family, os_name, os_company, os_family, platform, ip, country,
                                region, city, created_at)
    SELECT sid, id, 'outbound', tag, to_addr, true, CASE WHEN g % 3 = 0 THEN 'Text' ELSE 'HTML' END, 'https://acme.example/orders',
           lpad(to_hex(g % 50), 64, '0'), 'Mozilla/5.0', '', '', 'Chrome', '', '', '', 'Desktop', '192.0.2.1', '', '', '', created + interval '70 minutes'
      FROM base WHERE NOT queued AND g % 7 = 0
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO bounces (server_id, message_id, message_stream, type, type_code, email, from_email, subject, tag, details, inactive,
                         can_activate, bounced_at)
    SELECT sid, id, 'outbound', 'HardBounce', 1, to_addr, 'notifications@acme.example', {SUBJECTS}, tag, 'smtp;550 5.1.1 no such user',
           true, true, created + interval '3 seconds'
      FROM base WHERE NOT queued AND g % 33 = 0
    """,
    f"""
    WITH base AS ({BASE})
    INSERT INTO suppressions (server_id, message_stream, email, reason, origin, created_at)
    SELECT DISTINCT ON (sid, lower(to_addr)) sid, 'outbound', lower(to_addr), 'HardBounce', 'Recipient', created + interval '3 seconds'
      FROM base WHERE NOT queued AND g % 33 = 0
    ON CONFLICT DO NOTHING
    """,
)


async def fill(database_url: str, *, server_ids: list[int], n: int, progress: Callable[[str], None] = print) -> None:
    """N messages and everything that hangs off them, a round of a million at a time, then ANALYZE."""
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        await conn.execute("SET synchronous_commit = off")
        # The rows are consistent by construction: without this each of the ~4 rows per message
        # referencing `messages` pays a foreign-key check (a third of the fill). Needs a superuser.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")
        for lo in range(1, n + 1, ROUND):
            hi = min(lo + ROUND, n + 1)
            started = time.monotonic()
            async with conn.transaction():
                for statement in STATEMENTS:
                    sql, args = _positional(statement, {"sids": server_ids, "n": n, "lo": lo, "hi": hi})
                    await conn.execute(sql, *args)
            progress(f"datascale: messages {lo:,}-{hi - 1:,} in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        await conn.execute("VACUUM (ANALYZE)")
        progress(f"datascale: VACUUM ANALYZE in {time.monotonic() - started:.0f} s")
    finally:
        await conn.close()


def _positional(sql: str, params: dict[str, object]) -> tuple[str, list[object]]:
    """`:name` placeholders as asyncpg's `$n`."""
    names = list(params)
    for i, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${i}")
    return sql, [params[name] for name in names]


@dataclass(frozen=True, slots=True)
class Probe:
    """One read path: its name and the URLs to request, in turn."""

    name: str
    urls: list[str]
    headers: dict[str, str]


async def _samples(database_url: str, server_id: int) -> dict[str, list[str]]:
    """Real values to search for, read from the filled tables: addresses of people with a few and with
    many messages, message ids, order numbers, bounced addresses."""
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        ids = await conn.fetch(
            "SELECT id FROM messages WHERE server_id = $1 AND created_at < now() - interval '5 days' ORDER BY created_at DESC LIMIT 10",
            server_id,
        )
        addresses = await conn.fetch(
            "SELECT recipients[1] AS r FROM messages WHERE server_id = $1 AND created_at < now() - interval '20 days'"
            " ORDER BY created_at DESC LIMIT 10",
            server_id,
        )
        orders = await conn.fetch(
            "SELECT substring(subject from '#([0-9]+)') AS o FROM messages WHERE server_id = $1 AND subject LIKE 'Your order #%' LIMIT 10",
            server_id,
        )
        bounced = await conn.fetch(
            "SELECT email FROM bounces WHERE server_id = $1 AND bounced_at < now() - interval '3 days' ORDER BY bounced_at DESC LIMIT 10",
            server_id,
        )
    finally:
        await conn.close()
    return {
        "ids": [str(r["id"]) for r in ids],
        "recipients": [r["r"] for r in addresses],
        "orders": [f"#{r['o']}" for r in orders],
        "bounced": [r["email"].split("@")[0] for r in bounced],
    }


def _probes(base: str, server_id: int, token: str, samples: dict[str, list[str]], console_cookie: dict[str, str]) -> list[Probe]:
    h = {"X-Postmark-Server-Token": token, "Accept": "application/json"}
    page = {"count": "50", "offset": "0"}

    def search(**params: str) -> str:
        return f"{base}/messages/outbound?{urlencode({**page, **params})}"

    day = 86400.0
    recent, older = time.gmtime(time.time() - 10 * day), time.gmtime(time.time() - 8 * day)
    return [
        Probe("GET /messages/outbound, first page", [search()], h),
        Probe("GET /messages/outbound?recipient= (a full address)", [search(recipient=r) for r in samples["recipients"]], h),
        Probe("GET /messages/outbound?tag=&status=", [search(tag="receipt", status="sent")], h),
        Probe("GET /messages/outbound?subject= (an order number)", [search(subject=o) for o in samples["orders"]], h),
        Probe(
            "GET /messages/outbound?fromdate=&todate= (two days)",
            [search(fromdate=time.strftime("%Y-%m-%d", recent), todate=time.strftime("%Y-%m-%d", older))],
            h,
        ),
        Probe("GET /messages/outbound/{id}/details", [f"{base}/messages/outbound/{i}/details" for i in samples["ids"]], h),
        Probe("GET /stats/outbound", [f"{base}/stats/outbound"], h),
        Probe("GET /stats/outbound/sends", [f"{base}/stats/outbound/sends"], h),
        Probe(
            "GET /bounces?emailFilter= (part of an address)",
            [f"{base}/bounces?{urlencode({**page, 'emailFilter': e})}" for e in samples["bounced"]],
            h,
        ),
        Probe("Console activity page (signed in)", [f"{base}/console/servers/{server_id}/activity"], console_cookie),
    ]


def _measure(client: httpx.Client, probe: Probe) -> tuple[list[float], int]:
    """Warm-up (one pass over the URLs), then at least REQUESTS timed requests or MAX_SECONDS."""
    for url in probe.urls:
        client.get(url, headers=probe.headers)
    times: list[float] = []
    errors = 0
    deadline = time.monotonic() + MAX_SECONDS
    while len(times) < REQUESTS and time.monotonic() < deadline:
        url = probe.urls[len(times) % len(probe.urls)]
        started = time.perf_counter()
        response = client.get(url, headers=probe.headers)
        times.append((time.perf_counter() - started) * 1000)
        errors += response.status_code != 200
    return times, errors


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _console_cookie(client: httpx.Client, base: str, account: str) -> dict[str, str]:
    form = client.get(f"{base}/console/sign-in").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post(f"{base}/console/sign-in", data={"csrf_token": csrf, "username": "admin", "password": account, "next": "/console/servers"})
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    client.cookies.clear()
    return {"Cookie": cookie}


async def _reuse(database_url: str) -> tuple[int, int, str]:
    """(messages, the biggest server's id, a new token of it) of a database a `--keep` run filled."""
    token = secrets.token_hex(16)
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        server_id = await conn.fetchval("SELECT id FROM servers WHERE name = 'scale-1'")
        await conn.execute(
            "INSERT INTO server_tokens (server_id, token_sha256, hint) VALUES ($1, $2, $3)",
            server_id,
            hashlib.sha256(token.encode()).hexdigest(),
            token[-4:],
        )
        n = await conn.fetchval("SELECT count(*) FROM messages")
    finally:
        await conn.close()
    return int(n), int(server_id), token


def run(*, database_url: str, quick: bool, messages: int | None = None, reuse: bool = False) -> list[Row]:
    """Fill `messages` (quick: 20,000; default 1,000,000) and time each read path, one client, warm.
    With `reuse`, the database was filled by an earlier run and is only measured."""
    n = messages or (20_000 if quick else 1_000_000)
    port = free_port()
    account = "bench-account-token"
    base = f"http://127.0.0.1:{port}"
    api = start(
        "datascale-api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(port), "API_WORKERS": "1"},
        health_url=f"{base}/health",
    )
    rows: list[Row] = []
    try:
        if reuse:
            n, server_id, token = asyncio.run(_reuse(database_url))
        else:
            admin = {"X-Postmark-Account-Token": account}
            servers = [httpx.post(f"{base}/servers", json={"Name": f"scale-{i}"}, headers=admin).json() for i in (1, 2, 3)]
            started = time.monotonic()
            asyncio.run(fill(database_url, server_ids=[s["ID"] for s in servers], n=n))
            print(f"datascale: {n:,} messages filled in {time.monotonic() - started:.0f} s")
            server_id, token = servers[0]["ID"], servers[0]["ApiTokens"][0]
        samples = asyncio.run(_samples(database_url, server_id))
        with httpx.Client(timeout=120) as client:
            probes = _probes(base, server_id, token, samples, _console_cookie(client, base, account))
            for probe in probes:
                times, errors = _measure(client, probe)
                seconds = sum(times) / 1000
                rows.append(
                    Row(
                        scenario=f"Data scale ({n:,} messages): {probe.name}",
                        concurrency=1,
                        messages=len(times),
                        seconds=seconds,
                        rate=len(times) / seconds if seconds else 0.0,
                        p50_ms=statistics.median(times),
                        p99_ms=_percentile(times, 0.99),
                        cpu_per_msg_ms={},
                        peak_rss_mb={},
                        errors=errors,
                    )
                )
                print(f"| {probe.name} | {len(times)} | {rows[-1].p50_ms:.1f} | {rows[-1].p99_ms:.1f} | {errors} |", flush=True)
    finally:
        api.stop()
    return rows


def results_meta() -> dict[str, str]:
    """What RESULTS.md says of a run of this group alone."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "mode": "datascale group alone (python -m bench.datascale --record); the other rows are from the last full run",
        "load": "load average {:.1f} {:.1f} {:.1f} at the end (shared machine: other agents' work ran alongside)".format(*os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.datascale")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to fill (the issue's target is 10,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed) instead of dropping it")
    parser.add_argument("--reuse", metavar="URL", help="measure a database an earlier --keep run filled (migrated to head first)")
    parser.add_argument("--record", action="store_true", help="write the rows into bench/RESULTS.md and RESULTS.json (group datascale)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    url = args.reuse or with_database(base, f"postgate_bench_{secrets.token_hex(4)}")
    if not args.reuse:
        ensure_database(url)
    migrate(url)
    try:
        print("| Path | Requests | p50 ms | p99 ms | Errors |\n|---|---|---|---|---|")
        rows = run(database_url=url, quick=False, messages=args.messages, reuse=bool(args.reuse))
        if args.record:
            report.merge(RESULTS, group="datascale", rows=rows, meta=results_meta())
    finally:
        if args.keep or args.reuse:
            print(f"datascale: kept {url}")
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
