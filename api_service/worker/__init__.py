"""The worker process (`python -m api_service.worker`): the background loops of the domains that
have one — delivery (`delivery.service`), bulk expansion (`bulk.tasks`) and webhook sending (`webhooks.tasks`) —
polling PostgreSQL.

Several workers, on one machine or many, share the queues through SKIP LOCKED; a worker that dies
leaves leases that expire, and its rows are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable

import httpx

from api_service.bulk.tasks import expand_due
from api_service.config import Settings, get_settings
from api_service.db import create_engine, create_sessionmaker
from api_service.delivery.service import deliver_batch
from api_service.delivery.transport import transport_from_settings
from api_service.webhooks.tasks import schedule, send_due

log = logging.getLogger("postgate.worker")


async def _loop(name: str, step: Callable[[], Awaitable[int]], *, stop: asyncio.Event, idle: float) -> None:
    while not stop.is_set():
        try:
            done = await step()
        except Exception:  # a bad batch must not stop the worker; its leases expire and it is retried
            log.exception("%s loop failed; retrying", name)
            done = 0
        if not done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle)


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    engine = create_engine(settings.database_url, pool_size=max(5, settings.delivery_concurrency), max_overflow=5)
    sessionmaker = create_sessionmaker(engine)
    transport = transport_from_settings(settings, helo=settings.helo_name or socket.getfqdn())
    retry = schedule(settings.webhook_retry_schedule)
    try:
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=True, max_redirects=10) as client:
            await asyncio.gather(
                _loop(
                    "delivery",
                    lambda: deliver_batch(sessionmaker=sessionmaker, transport=transport, settings=settings),
                    stop=stop,
                    idle=settings.worker_poll_seconds,
                ),
                _loop(
                    "bulk",
                    lambda: expand_due(sessionmaker=sessionmaker, settings=settings),
                    stop=stop,
                    idle=settings.worker_poll_seconds,
                ),
                _loop(
                    "webhooks",
                    lambda: send_due(sessionmaker=sessionmaker, client=client, retry_schedule=retry),
                    stop=stop,
                    idle=settings.worker_poll_seconds,
                ),
            )
    finally:
        if transport.pool is not None:
            transport.pool.close()
        await engine.dispose()


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = get_settings()
    log.info("worker started (relay: %s)", settings.outbound_relay)
    await run(settings, stop=stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_main())
