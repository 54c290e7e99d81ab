from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.models import Bounce, Suppression


@dataclass(slots=True)
class BounceFilter:
    type: str | None = None
    inactive: bool | None = None
    email: str | None = None
    tag: str | None = None
    message_id: uuid.UUID | None = None
    message_stream: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None


async def list_bounces(
    *, session: AsyncSession, server_id: int, filters: BounceFilter, count: int, offset: int
) -> tuple[int, list[tuple[Bounce, bool]]]:
    """A page of bounces, each with whether its dump is kept (the dump itself is not loaded)."""
    stmt = select(Bounce).where(Bounce.server_id == server_id)
    if filters.type:
        stmt = stmt.where(Bounce.type == filters.type)
    if filters.inactive is not None:
        stmt = stmt.where(Bounce.inactive.is_(filters.inactive))
    if filters.email:
        stmt = stmt.where(Bounce.email.icontains(filters.email, autoescape=True))
    if filters.tag:
        stmt = stmt.where(Bounce.tag == filters.tag)
    if filters.message_id:
        stmt = stmt.where(Bounce.message_id == filters.message_id)
    if filters.message_stream:
        stmt = stmt.where(Bounce.message_stream == filters.message_stream)
    if filters.from_date:
        stmt = stmt.where(Bounce.bounced_at >= filters.from_date)
    if filters.to_date:
        stmt = stmt.where(Bounce.bounced_at < filters.to_date)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    page = (
        stmt.add_columns(Bounce.dump.is_not(None))
        .options(defer(Bounce.dump), defer(Bounce.content))
        .order_by(Bounce.bounced_at.desc(), Bounce.id.desc())
    )
    rows = (await session.execute(page.limit(count).offset(offset))).all()
    return total, [(b, bool(has_dump)) for b, has_dump in rows]


async def get_bounce(*, session: AsyncSession, server_id: int, bounce_id: int, for_update: bool = False) -> Bounce | None:
    stmt = select(Bounce).where(Bounce.server_id == server_id, Bounce.id == bounce_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_by_type(*, session: AsyncSession, server_id: int) -> list[tuple[str, int]]:
    stmt = select(Bounce.type, func.count()).where(Bounce.server_id == server_id).group_by(Bounce.type).order_by(Bounce.type)
    return [(t, c) for t, c in (await session.execute(stmt)).all()]


async def count_inactive(*, session: AsyncSession, server_id: int) -> int:
    stmt = select(func.count()).select_from(Suppression).where(Suppression.server_id == server_id)
    return (await session.execute(stmt)).scalar_one()


async def reactivate_recipient(*, session: AsyncSession, server_id: int, stream: str, email: str) -> None:
    """Lift the recipient's suppression and mark its bounces on that stream active."""
    await session.execute(
        update(Bounce)
        .where(Bounce.server_id == server_id, Bounce.message_stream == stream, func.lower(Bounce.email) == email.lower())
        .values(inactive=False)
    )
    await session.execute(
        delete(Suppression).where(
            Suppression.server_id == server_id, Suppression.message_stream == stream, Suppression.email == email.lower()
        )
    )


async def suppress(*, session: AsyncSession, server_id: int, stream: str, email: str, reason: str, origin: str) -> None:
    stmt = (
        pg_insert(Suppression)
        .values(server_id=server_id, message_stream=stream, email=email.lower(), reason=reason, origin=origin)
        .on_conflict_do_nothing(constraint="uq_suppressions_recipient")
    )
    await session.execute(stmt)


async def bounce_tags(*, session: AsyncSession, server_id: int) -> list[str]:
    stmt = select(Bounce.tag).where(Bounce.server_id == server_id, Bounce.tag != "").distinct().order_by(Bounce.tag)
    return list((await session.execute(stmt)).scalars().all())


async def count_per_day(*, session: AsyncSession, server_id: int, since: datetime) -> dict[date, int]:
    """Bounces (of every type) per UTC day since `since` (days without any are absent)."""
    day = func.date(func.timezone("UTC", Bounce.bounced_at))
    stmt = select(day, func.count()).where(Bounce.server_id == server_id, Bounce.bounced_at >= since).group_by(day)
    return {d: int(c) for d, c in (await session.execute(stmt)).all()}
