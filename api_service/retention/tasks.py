"""The worker's retention round: at most one batch of each kind for each server, one transaction each."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.core import metrics
from api_service.retention import service

log = logging.getLogger("postgate.retention")

LOCK_NOT_AVAILABLE = "55P03"


def _lock_not_available(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _server_batch(*, kind: service.Kind, server_id: int, days: int, limit: int) -> Callable[[AsyncSession], Awaitable[int]]:
    async def run(session: AsyncSession) -> int:
        return await service.purge_batch(session=session, kind=kind, server_id=server_id, days=days, limit=limit)

    return run


async def _one_batch(sessionmaker: async_sessionmaker[AsyncSession], kind: str, purge: Callable[[AsyncSession], Awaitable[int]]) -> int:
    """Run one purge batch in its own transaction; rows deleted (0 when they were locked)."""
    try:
        async with sessionmaker() as session, session.begin():
            count = await purge(session)
    except DBAPIError as exc:
        if not _lock_not_available(exc):
            raise
        log.info("retention: some %s are locked; they are tried again next round", kind)
        return 0
    if count:
        metrics.RETENTION_DELETED.labels(kind).inc(count)
    return count


async def purge_due(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Delete one batch of expired rows of every kind and server; the number of rows deleted.

    Small transactions keep row locks short and let autovacuum follow; the worker calls this again at
    once while it deletes something, and waits RETENTION_INTERVAL_SECONDS once nothing has expired.
    """
    async with sessionmaker() as session:
        days_by_server = await service.retention_days(session=session, default_days=settings.retention_days)
    limit = settings.retention_batch_size
    deleted = 0
    for server_id, days in days_by_server.items():
        for kind in service.KINDS:
            deleted += await _one_batch(sessionmaker, kind.name, _server_batch(kind=kind, server_id=server_id, days=days, limit=limit))
    deleted += await _one_batch(sessionmaker, service.IDEMPOTENCY_KEYS, lambda s: service.purge_idempotency_keys(session=s, limit=limit))
    deleted += await _one_batch(
        sessionmaker, service.REPORTS, lambda s: service.purge_reports(session=s, days=settings.retention_days, limit=limit)
    )
    deleted += await _one_batch(
        sessionmaker, service.AUDIT_EVENTS, lambda s: service.purge_audit_events(session=s, days=settings.audit_retention_days, limit=limit)
    )
    if deleted:
        log.info("retention: deleted %d expired rows", deleted)
    return deleted
