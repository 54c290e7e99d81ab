from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, func, not_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.core.listing import page_rows
from api_service.models import Bounce, BounceDump, Message, Suppression
from shared.constants import MAX_PAGE_WINDOW, BounceType


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


@dataclass(slots=True)
class BounceRow:
    """A bounce with what the API shows beside it: whether its dump is kept and whether its
    recipient is still suppressed (the suppression list is the truth for `Inactive`)."""

    bounce: Bounce
    dump_available: bool
    suppressed: bool

    @property
    def inactive(self) -> bool:
        return self.bounce.inactive and self.suppressed


def _suppressed() -> ColumnElement[bool]:
    return exists().where(
        Suppression.server_id == Bounce.server_id,
        Suppression.message_stream == Bounce.message_stream,
        Suppression.email == func.lower(Bounce.email),
    )


async def add_bounce(*, session: AsyncSession, bounce: Bounce) -> Bounce:
    session.add(bounce)
    await session.flush()
    return bounce


def _clauses(f: BounceFilter) -> list[ColumnElement[bool] | None]:
    """One clause per search parameter; None where the parameter was not given. `Inactive` is the
    stored flag and a live suppression together, as the answer shows it."""
    inactive = and_(Bounce.inactive.is_(True), _suppressed())
    return [
        Bounce.type == f.type if f.type else None,
        None if f.inactive is None else inactive if f.inactive else not_(inactive),
        Bounce.email.icontains(f.email, autoescape=True) if f.email else None,
        Bounce.tag == f.tag if f.tag else None,
        Bounce.message_id == f.message_id if f.message_id else None,
        Bounce.message_stream == f.message_stream if f.message_stream else None,
        Bounce.bounced_at >= f.from_date if f.from_date else None,
        Bounce.bounced_at < f.to_date if f.to_date else None,
    ]


async def list_bounces(
    *, session: AsyncSession, server_id: int, filters: BounceFilter, count: int, offset: int
) -> tuple[int, list[BounceRow]]:
    """A page of bounces (their dumps are not loaded); the total counts at most the search window."""
    total, rows = await page_rows(
        session=session,
        stmt=select(Bounce).where(Bounce.server_id == server_id),
        filters=_clauses(filters),
        order_by=[Bounce.bounced_at.desc(), Bounce.id.desc()],
        count=count,
        offset=offset,
        columns=[or_(Bounce.dump.is_not(None), Bounce.dump_id.is_not(None)), _suppressed()],
        options=[defer(Bounce.dump), defer(Bounce.content)],
        count_at_most=MAX_PAGE_WINDOW,
        plan_per_search=True,
    )
    return total, [BounceRow(bounce=b, dump_available=bool(d), suppressed=bool(s)) for b, d, s in rows]


async def get_bounce(*, session: AsyncSession, server_id: int, bounce_id: int) -> BounceRow | None:
    stmt = select(Bounce, _suppressed()).where(Bounce.server_id == server_id, Bounce.id == bounce_id)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    bounce, suppressed = row
    return BounceRow(bounce=bounce, dump_available=bounce.dump is not None or bounce.dump_id is not None, suppressed=bool(suppressed))


async def add_dump(*, session: AsyncSession, server_id: int, body: bytes) -> int:
    dump = BounceDump(server_id=server_id, body=body)
    session.add(dump)
    await session.flush()
    return dump.id


async def get_dump_body(*, session: AsyncSession, dump_id: int) -> bytes | None:
    return (await session.execute(select(BounceDump.body).where(BounceDump.id == dump_id))).scalar_one_or_none()


async def count_by_type(*, session: AsyncSession, server_id: int) -> list[tuple[str, int]]:
    stmt = select(Bounce.type, func.count()).where(Bounce.server_id == server_id).group_by(Bounce.type).order_by(Bounce.type)
    return [(t, c) for t, c in (await session.execute(stmt)).all()]


async def count_inactive(*, session: AsyncSession, server_id: int) -> int:
    stmt = select(func.count()).select_from(Suppression).where(Suppression.server_id == server_id)
    return (await session.execute(stmt)).scalar_one()


async def bounce_tags(*, session: AsyncSession, server_id: int) -> list[str]:
    stmt = select(Bounce.tag).where(Bounce.server_id == server_id, Bounce.tag != "").distinct().order_by(Bounce.tag)
    return list((await session.execute(stmt)).scalars().all())


# --- data removal --------------------------------------------------------------------------------


async def delete_for_email(*, session: AsyncSession, email: str, limit: int) -> int:
    """Up to `limit` bounces of the (lower-cased) address, their dumps with them."""
    doomed = select(Bounce.id).where(func.lower(Bounce.email) == email).limit(limit).scalar_subquery()
    rows = (await session.execute(delete(Bounce).where(Bounce.id.in_(doomed)).returning(Bounce.id, Bounce.dump_id))).all()
    dump_ids = {dump_id for _, dump_id in rows if dump_id is not None}
    if dump_ids:
        # A dump is shared by the bounces of one message; it goes when no bounce refers to it any more.
        still_used = select(Bounce.dump_id).where(Bounce.dump_id.in_(dump_ids))
        await session.execute(delete(BounceDump).where(BounceDump.id.in_(dump_ids), BounceDump.id.not_in(still_used)))
    return len(rows)


async def dumps_for_update(*, session: AsyncSession, ids: set[int]) -> list[BounceDump]:
    if not ids:
        return []
    stmt = select(BounceDump).where(BounceDump.id.in_(ids)).order_by(BounceDump.id).with_for_update()
    return list((await session.execute(stmt)).scalars().all())


async def bounces_of_messages(*, session: AsyncSession, message_ids: list[uuid.UUID]) -> list[Bounce]:
    if not message_ids:
        return []
    stmt = select(Bounce).where(Bounce.message_id.in_(message_ids)).order_by(Bounce.id).with_for_update()
    return list((await session.execute(stmt)).scalars().all())


# --- retention -----------------------------------------------------------------------------------

DELETE_EXPIRED = text(
    """
    DELETE FROM bounces WHERE id IN (
        SELECT id FROM bounces
         WHERE server_id = :server_id AND bounced_at < now() - make_interval(days => :days)
         ORDER BY bounced_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)

# A dump is as old as the bounces it explains; a younger bounce never points at an expired dump.
DELETE_EXPIRED_DUMPS = text(
    """
    DELETE FROM bounce_dumps WHERE id IN (
        SELECT id FROM bounce_dumps
         WHERE server_id = :server_id AND created_at < now() - make_interval(days => :days)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


async def delete_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's bounces older than `days`; suppressions are another table and stay."""
    result = cast(CursorResult[Any], await session.execute(DELETE_EXPIRED, {"server_id": server_id, "days": days, "limit": limit}))
    return int(result.rowcount)


async def delete_expired_dumps(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's raw bounce sources older than `days`."""
    params = {"server_id": server_id, "days": days, "limit": limit}
    result = cast(CursorResult[Any], await session.execute(DELETE_EXPIRED_DUMPS, params))
    return int(result.rowcount)


async def complaint_counts(*, session: AsyncSession, server_id: int, stream: str, since: datetime) -> tuple[int, int]:
    """(spam complaints, recipients of the messages sent) on a server's stream since `since`."""
    complaints = select(func.count()).where(
        Bounce.server_id == server_id,
        Bounce.message_stream == stream,
        Bounce.type == BounceType.SPAM_COMPLAINT,
        Bounce.bounced_at >= since,
    )
    sent = select(func.coalesce(func.sum(func.cardinality(Message.recipients)), 0)).where(
        Message.server_id == server_id,
        Message.message_stream == stream,
        Message.created_at >= since,
        Message.sandboxed.is_(False),
    )
    row = (await session.execute(select(complaints.scalar_subquery(), sent.scalar_subquery()))).one()
    return int(row[0]), int(row[1])
