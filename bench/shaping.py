"""Direct delivery shaped per destination: local MX servers on 127.x.y.z:25 that allow few
connections (421 beyond), a DNS server of our own, and workers running the delivery loop in process.

Rows:
- three destinations with different limits (2, 5 and 10 connections; the policy file says so):
  messages a second over all, connections opened and refused per destination;
- head-of-line blocking: a fast destination's rate alone, then beside a throttled destination
  (20 messages a second) holding many queued recipients; the ratio column is the second over the
  first (1.0: no slowdown; the issue asks for at least 0.9).

Binding port 25 needs root or CAP_NET_BIND_SERVICE. Uses the tests' DNS server and limited MX
(tests/api/core/dns_server.py, tests/api/delivery/limited_mx.py): they are the same peers the
tests measure against.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

import httpx

from api_service.config import Settings
from api_service.delivery.service import deliver_batch
from api_service.delivery.transport import SMTP_PORT, transport_from_settings
from api_service.main import create_app
from bench.rest import Row
from tests.api.core.dns_server import Zone, dns_server
from tests.api.delivery.limited_mx import LimitedMx

ACCOUNT = "bench-account-token"
_BASE = int(IPv4Address("127.0.0.0")) + random.randrange(1, 2**24 - 4096)
_addresses = iter(range(4096))


def _address() -> str:
    return str(IPv4Address(_BASE + next(_addresses)))


async def _mx(zone: Zone, domain: str, **limits: float) -> LimitedMx:
    server = LimitedMx(**limits)  # type: ignore[arg-type]
    ip = _address()
    await server.start(ip, SMTP_PORT)
    zone.mx(domain, (10, f"mx.{domain}"))
    zone.a(f"mx.{domain}", ip)
    return server


async def _queue(client: httpx.AsyncClient, token: str, domain: str, count: int) -> None:
    for start in range(0, count, 500):
        batch = [
            {"From": "bench@bench.example", "To": f"r{start + i}@{domain}", "Subject": "Bench", "TextBody": "Hello"}
            for i in range(min(500, count - start))
        ]
        (await client.post("/email/batch", json=batch, headers={"X-Postmark-Server-Token": token})).raise_for_status()


async def _deliver(settings: Settings, *, workers: int, done: object, limit_seconds: float) -> float:
    """The worker loop (`workers` of them, each with its own transport) until `done()`; seconds taken."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        transports = [transport_from_settings(settings, helo="bench.postgate.test") for _ in range(workers)]

        async def loop(transport: object) -> None:
            while not done() and time.perf_counter() - started < limit_seconds:  # type: ignore[operator]
                if not await deliver_batch(sessionmaker=app.state.sessionmaker, transport=transport, settings=settings):  # type: ignore[arg-type]
                    await asyncio.sleep(settings.worker_poll_seconds)

        try:
            await asyncio.gather(*(loop(t) for t in transports))
        finally:
            for transport in transports:
                transport.close()
    return time.perf_counter() - started


def _row(name: str, *, messages: int, seconds: float, workers: int, ceiling: float = 0.0, errors: int = 0) -> Row:
    return Row(
        scenario=name,
        concurrency=workers,
        messages=messages,
        seconds=round(seconds, 2),
        rate=round(messages / seconds, 1) if seconds else 0.0,
        p50_ms=0.0,
        p99_ms=0.0,
        cpu_per_msg_ms={},
        peak_rss_mb={},
        errors=errors,
        ceiling_rate=ceiling,
    )


async def _run(database_url: str, quick: bool) -> list[Row]:
    per_destination = 150 if quick else 1000
    throttled_queue = 1000 if quick else 10_000
    fast_count = 200 if quick else 2000
    workers = 2
    rows: list[Row] = []
    with dns_server() as (zone, resolver), tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(
            "\n".join(
                f'[destinations."mx:mx.{d}"]\nconnections = {n}\nmessages_per_connection = 1000\nper_minute = 100000\n'
                for d, n in (("two.example", 2), ("five.example", 5), ("ten.example", 10), ("fast.example", 5))
            )
            + '[destinations."mx:mx.throttled.example"]\nconnections = 2\nper_second = 20\n'
        )
        settings = Settings(
            database_url=database_url,
            account_token=ACCOUNT,
            sender_auto_confirm=True,
            rate_limit_enabled=False,
            outbound_relay="mx",
            dns_resolver=resolver,
            mx_allowed_networks="127.0.0.0/8",
            return_path_domain="bounces.bench.example",
            delivery_policy_file=str(policy),
            delivery_concurrency=50,
            delivery_batch_size=200,
            worker_poll_seconds=0.05,
            delivery_retry_first_seconds=1.0,
        )
        api = create_app(settings)
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://bench") as client,
        ):
            headers = {"X-Postmark-Account-Token": ACCOUNT}
            created = (await client.post("/servers", json={"Name": "bench-shaping"}, headers=headers)).json()
            await client.post("/senders", json={"FromEmail": "bench@bench.example", "Name": "Bench"}, headers=headers)
            token = created["ApiTokens"][0]

            servers = {d: await _mx(zone, d, max_connections=n) for d, n in (("two.example", 2), ("five.example", 5), ("ten.example", 10))}
            for domain in servers:
                await _queue(client, token, domain, per_destination)
            total = 3 * per_destination
            seconds = await _deliver(
                settings, workers=workers, done=lambda: sum(len(s.received) for s in servers.values()) >= total, limit_seconds=600
            )
            delivered = sum(len(s.received) for s in servers.values())
            used = ", ".join(f"{d.split('.')[0]}: {s.accepted} conns ({s.refused} refused, peak {s.peak})" for d, s in servers.items())
            rows.append(
                _row(
                    f"shaped MX delivery, 3 destinations of 2/5/10 connections [{used}]",
                    messages=delivered,
                    seconds=seconds,
                    workers=workers,
                    errors=total - delivered,
                )
            )

            fast = await _mx(zone, "fast.example", max_connections=5)
            await _queue(client, token, "fast.example", fast_count)
            alone = await _deliver(settings, workers=workers, done=lambda: len(fast.received) >= fast_count, limit_seconds=600)
            alone_rate = fast_count / alone
            rows.append(_row("fast destination alone (5 connections)", messages=len(fast.received), seconds=alone, workers=workers))

            throttled = await _mx(zone, "throttled.example", max_connections=2)
            await _queue(client, token, "throttled.example", throttled_queue)
            base = len(fast.received)
            await _queue(client, token, "fast.example", fast_count)
            beside = await _deliver(settings, workers=workers, done=lambda: len(fast.received) >= base + fast_count, limit_seconds=600)
            rows.append(
                _row(
                    f"fast destination beside a throttled one (20/s, {throttled_queue} queued; {len(throttled.received)} sent meanwhile)",
                    messages=len(fast.received) - base,
                    seconds=beside,
                    workers=workers,
                    ceiling=round(alone_rate, 1),
                )
            )
            for server in [*servers.values(), fast, throttled]:
                await server.stop()
    return rows


def run(*, database_url: str, quick: bool) -> list[Row]:
    return asyncio.run(_run(database_url, quick))
