"""The API process' operations: its rate limiter, the upkeep tasks that run beside requests, and
the deployment figures a `/metrics` scrape reads from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api_service.config import Settings
from api_service.core import metrics
from api_service.core.gcra import Rate
from api_service.core.logs import Throttle
from api_service.core.ratelimit import Limiter, RateLimits
from api_service.delivery import service as delivery
from api_service.operations import repository
from api_service.operations.stores import PostgresStore, RedisStore
from shared.schemas.delivery import DeliveryDestination

log = logging.getLogger("postgate.operations")
FIGURE_CAP = 100_000  # counts stop here: a scrape stays cheap however long the queue
PRUNE_SECONDS = 300.0
throttle = Throttle(60.0)


def rate_limits(settings: Settings) -> RateLimits | None:
    """The limiter the settings ask for, or None when rate limits are off."""
    if not settings.rate_limit_enabled:
        return None
    store = RedisStore(settings.redis_url) if settings.redis_url else PostgresStore(settings.database_url)
    return RateLimits(
        limiter=Limiter(store=store, lease_seconds=settings.rate_limit_lease_seconds),
        server=Rate(per_second=settings.rate_limit_server_per_second, burst=settings.rate_limit_server_burst),
        account=Rate(per_second=settings.rate_limit_account_per_second, burst=settings.rate_limit_account_burst),
        internal=Rate(per_second=settings.rate_limit_internal_per_second, burst=settings.rate_limit_internal_burst),
    )


async def _prune_forever(store: PostgresStore | RedisStore) -> None:
    while True:
        await asyncio.sleep(PRUNE_SECONDS)
        try:
            await store.prune()
        except Exception as exc:  # the store is down: the limiter already fails open and says so
            throttle.log(log, logging.WARNING, "prune", "pruning rate limit buckets failed: %s", type(exc).__name__)


@contextlib.asynccontextmanager
async def running(*, engine: AsyncEngine, settings: Settings) -> AsyncIterator[RateLimits | None]:
    """For the app's lifespan: the rate limiter and the background upkeep, stopped on exit."""
    limits = rate_limits(settings)
    tasks = [asyncio.create_task(metrics.sample_pool_forever(engine, limit=settings.db_pool_size + settings.db_max_overflow))]
    if limits is not None and isinstance(limits.limiter.store, PostgresStore | RedisStore):
        tasks.append(asyncio.create_task(_prune_forever(limits.limiter.store)))
    try:
        yield limits
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if limits is not None:
            await limits.limiter.close()
        metrics.process_exited()


class _FiguresCollector(Collector):
    def __init__(self, figures: repository.Figures | None) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("postgate_database_up", "1 when this scrape could read the deployment figures from PostgreSQL")
        up.add_metric([], 1.0 if self.figures is not None else 0.0)
        yield up
        f = self.figures
        if f is None:
            return
        cap = f" (counted up to {FIGURE_CAP})"
        yield GaugeMetricFamily("postgate_queue_depth", "Recipients queued or deferred, waiting for delivery" + cap, value=f.queued)
        yield GaugeMetricFamily("postgate_queue_due", "Of those, recipients whose next attempt is due now" + cap, value=f.due)
        yield GaugeMetricFamily(
            "postgate_queue_oldest_due_age_seconds", "How long the longest-waiting due recipient has been due", value=f.oldest_due_age
        )
        yield GaugeMetricFamily("postgate_webhook_outbox_depth", "Webhook POSTs waiting to be sent or retried" + cap, value=f.outbox)
        yield GaugeMetricFamily(
            "postgate_webhook_outbox_retrying", "Of those, POSTs that have failed at least once" + cap, value=f.outbox_retrying
        )
        yield GaugeMetricFamily(
            "postgate_webhook_outbox_oldest_due_age_seconds",
            "How long the longest-waiting due webhook POST has been due",
            value=f.outbox_oldest_due_age,
        )


async def scrape(*, session: AsyncSession, engine: AsyncEngine, pool_limit: int, settings: Settings | None = None) -> bytes:
    """Exposition text: this process' (or all API processes') counters, then the deployment's
    figures from PostgreSQL; without the database, the counters and `postgate_database_up 0`."""
    metrics.sample_pool(engine, limit=pool_limit)
    destinations: list[DeliveryDestination] = []
    try:
        figures: repository.Figures | None = await repository.figures(session=session, cap=FIGURE_CAP)
        if settings is not None:
            destinations = (await delivery.destinations(session=session, settings=settings))[:DESTINATION_CAP]
    except Exception as exc:  # a scrape during an outage still answers, and says the database is down
        await session.rollback()
        throttle.log(log, logging.WARNING, "figures", "reading the deployment figures failed: %s", type(exc).__name__)
        figures = None
    registry = CollectorRegistry()
    registry.register(_FiguresCollector(figures))
    registry.register(_DestinationsCollector(destinations))
    return metrics.render() + generate_latest(registry)


DESTINATION_CAP = 500  # series per metric: the busiest destinations are the big providers, a handful


class _DestinationsCollector(Collector):
    """Each delivery destination's live limits and state (see `GET /delivery/destinations`)."""

    def __init__(self, destinations: list[DeliveryDestination]) -> None:
        self.destinations = destinations

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self.destinations:
            return
        families: dict[str, tuple[str, Callable[[DeliveryDestination], float]]] = {
            "connections": ("Parallel connections a destination allows now (learned, at most its policy's)", lambda d: d.Connections),
            "open_connections": ("Connections open to a destination, over every worker", lambda d: d.OpenConnections),
            "queued": ("Recipients queued or deferred for a destination", lambda d: d.Queued),
            "rate_factor": ("Share of a destination's configured rates allowed now (learned)", lambda d: d.RateFactor),
            "suspended": (
                "1 while a destination is suspended (backing off after throttling replies)",
                lambda d: float(d.State == "suspended"),
            ),
            "delivered": ("Recipients a destination accepted since it was first met", lambda d: d.Delivered),
            "throttled": ("Throttling replies (421, 4.7.x) a destination gave since it was first met", lambda d: d.Throttled),
        }
        for name, (text, value) in families.items():
            family = GaugeMetricFamily(f"postgate_delivery_destination_{name}", text, labels=["destination"])
            for d in self.destinations:
                family.add_metric([d.Destination], float(value(d)))
            yield family
