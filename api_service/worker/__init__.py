"""The worker process (`python -m api_service.worker`): the background loops of the domains that
have one — delivery (`delivery.service`), bulk expansion (`bulk.tasks`), webhook sending (`webhooks.tasks`, whose
attempts at inbound POSTs are reported to `inbound.service`), DNS checks of DKIM keys and sender health (`domains.tasks`),
the PTR names of DMARC report sources (`dmarc.tasks`), data removals (`data_removals.tasks`) and TLS-RPT reports
(`delivery.tls_tasks`) — polling PostgreSQL.

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
from urllib.parse import urlsplit, urlunsplit

import uvloop

from api_service.bulk.tasks import expand_due
from api_service.config import Settings, get_settings
from api_service.core import metrics
from api_service.core.logs import Throttle, configure_logging
from api_service.core.outage import OutageLog, database_unavailable
from api_service.data_removals.tasks import process_due
from api_service.db import create_engine, create_sessionmaker
from api_service.delivery.service import deliver_batch
from api_service.delivery.tls_tasks import PolicyStore, send_due_reports
from api_service.delivery.transport import transport_from_settings
from api_service.dmarc.tasks import fill_ptrs
from api_service.domains.dns import lookup_for
from api_service.domains.health_service import health_config
from api_service.domains.service import CnameTargets
from api_service.domains.tasks import check_dns, check_health
from api_service.domains.views import tracking_cname_value
from api_service.inbound.service import INBOUND_RECORD_TYPE, record_hook_outcome
from api_service.retention.tasks import purge_due
from api_service.webhooks.tasks import OutcomeHandler, schedule, send_due, webhook_client

log = logging.getLogger("postgate.worker")
throttle = Throttle(60.0)
POOL_SIZE = 8
POOL_OVERFLOW = 8

# What a webhook attempt means to the domain that queued it, by outbox record type.
OUTCOME_HANDLERS: dict[str, OutcomeHandler] = {INBOUND_RECORD_TYPE: record_hook_outcome}


async def _loop(name: str, step: Callable[[], Awaitable[int]], *, stop: asyncio.Event, idle: float) -> None:
    outage = OutageLog(log, what=f"worker {name} loop")
    while not stop.is_set():
        try:
            done = await step()
            outage.succeeded()
        except Exception as exc:  # a bad batch must not stop the worker; its leases expire and it is retried
            if database_unavailable(exc):
                outage.failed(exc)  # once per interval, not a traceback per poll
            else:  # a bug failing every poll: one traceback a minute
                throttle.log(log, logging.ERROR, name, "%s loop failed; retrying", name, exc_info=True)
            done = 0
        if not done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle)


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    # Outcomes are group-committed (core.groupcommit): a loop holds one or two connections at a time
    # whatever its concurrency, not one per send in flight. The overflow serves the per-group
    # fallback when a group commit fails.
    engine = create_engine(settings.database_url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    sessionmaker = create_sessionmaker(engine)
    helo = settings.helo_name or socket.getfqdn()
    transport = transport_from_settings(settings, helo=helo)
    transport.tls.store = PolicyStore(sessionmaker)
    retry = schedule(settings.webhook_retry_schedule)
    dns = lookup_for(settings.dns_resolver)
    health = health_config(settings, helo=settings.helo_name or socket.getfqdn())
    pool = asyncio.create_task(metrics.sample_pool_forever(engine, limit=POOL_SIZE + POOL_OVERFLOW))
    try:
        async with webhook_client(settings) as client:
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
                    lambda: send_due(
                        sessionmaker=sessionmaker,
                        client=client,
                        retry_schedule=retry,
                        deadline=settings.webhook_timeout_seconds,
                        limit=settings.webhook_concurrency,
                        outcome_handlers=OUTCOME_HANDLERS,
                    ),
                    stop=stop,
                    idle=settings.worker_poll_seconds,
                ),
                _loop(
                    "data removals",
                    lambda: process_due(sessionmaker=sessionmaker, settings=settings),
                    stop=stop,
                    idle=settings.worker_poll_seconds,
                ),
                _loop(
                    "retention",
                    lambda: purge_due(sessionmaker=sessionmaker, settings=settings),
                    stop=stop,
                    idle=settings.retention_interval_seconds,
                ),
                _loop(
                    "tls reports",
                    lambda: send_due_reports(sessionmaker=sessionmaker, transport=transport, settings=settings, helo=helo),
                    stop=stop,
                    idle=settings.tls_rpt_interval_seconds,
                ),
                _loop(
                    "dns",
                    lambda: check_dns(
                        sessionmaker=sessionmaker,
                        dns=dns,
                        interval_seconds=settings.dns_check_interval_seconds,
                        targets=CnameTargets(return_path=settings.return_path_domain, tracking=tracking_cname_value(settings)),
                    ),
                    stop=stop,
                    idle=min(60.0, settings.dns_check_interval_seconds),
                ),
                _loop(
                    "sender health",
                    lambda: check_health(
                        sessionmaker=sessionmaker, dns=dns, config=health, interval_seconds=settings.sender_health_interval_seconds
                    ),
                    stop=stop,
                    idle=min(60.0, settings.sender_health_interval_seconds),
                ),
                _loop("report PTRs", lambda: fill_ptrs(sessionmaker=sessionmaker, dns=dns), stop=stop, idle=60.0),
            )
    finally:
        pool.cancel()
        transport.close()
        await transport.tls.aclose()
        await engine.dispose()


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = get_settings()
    log.info("worker started (relay: %s)", safe_relay(settings.outbound_relay))
    stop_metrics = None
    if settings.worker_metrics_port:
        stop_metrics = metrics.serve_metrics(host=settings.metrics_host, port=settings.worker_metrics_port, token=settings.metrics_token)
        log.info("worker metrics on http://%s:%d/metrics", settings.metrics_host, settings.worker_metrics_port)
    try:
        await run(settings, stop=stop)
    finally:
        if stop_metrics is not None:
            stop_metrics()


def safe_relay(relay: str) -> str:
    """The relay URL without its password, for the log."""
    parts = urlsplit(relay)
    if parts.password is None:
        return relay
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")))


def main() -> None:
    settings = get_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    # uvloop: the worker's time goes mostly to the event loop itself (socket writes and polling for
    # thousands of SMTP commands and SQL statements a second, see bench/RESULTS.md), which uvloop
    # does in C.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main())
