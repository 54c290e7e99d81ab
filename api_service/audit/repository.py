from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import Select, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import AuditEvent


async def add(*, session: AsyncSession, event: AuditEvent) -> None:
    session.add(event)
    await session.flush()


def _filtered(
    *,
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    server_id: int | None,
) -> Select[AuditEvent]:
    stmt = select(AuditEvent)
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at <= until)
    if actor:
        stmt = stmt.where(AuditEvent.actor.icontains(actor, autoescape=True))
    if action:
        stmt = stmt.where(AuditEvent.action.icontains(action, autoescape=True))
    if target:
        stmt = stmt.where(
            or_(AuditEvent.target_type.icontains(target, autoescape=True), AuditEvent.target_id.icontains(target, autoescape=True))
        )
    if server_id is not None:
        stmt = stmt.where(AuditEvent.server_id == server_id)
    return stmt


async def search(
    *,
    session: AsyncSession,
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    server_id: int | None,
    count: int,
    offset: int,
) -> tuple[int, list[AuditEvent]]:
    stmt = _filtered(since=since, until=until, actor=actor, action=action, target=target, server_id=server_id)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await session.execute(stmt.order_by(AuditEvent.id.desc()).limit(count).offset(offset))
    return total, list(rows.scalars())


async def stream(
    *,
    session: AsyncSession,
    since: datetime | None,
    until: datetime | None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    server_id: int | None = None,
) -> AsyncIterator[AuditEvent]:
    """Every matching event, oldest first, read in pages (an export may be long)."""
    stmt = _filtered(since=since, until=until, actor=actor, action=action, target=target, server_id=server_id)
    last = 0
    while True:
        rows = list((await session.execute(stmt.where(AuditEvent.id > last).order_by(AuditEvent.id).limit(1000))).scalars())
        for row in rows:
            yield row
        if len(rows) < 1000:
            return
        last = rows[-1].id


async def purge_older_than(*, session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete one batch of events older than `cutoff`: the only deletion the table's trigger allows."""
    await session.execute(text("SET LOCAL postgate.audit_purge = 'on'"))
    doomed = (
        select(AuditEvent.id).where(AuditEvent.occurred_at < cutoff).order_by(AuditEvent.id).limit(limit).with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(AuditEvent).where(AuditEvent.id.in_(doomed.scalar_subquery())).returning(AuditEvent.id))
    return len(result.all())
