"""Aggregates only: every query groups in PostgreSQL and returns a row per day (and key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api_service.models import Bounce, Message, MessageClick, MessageOpen, MessageRecipient
from shared.constants import TrackLinks

# Postmark's stats days are US Eastern days.
EASTERN = "America/New_York"
UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class StatsFilter:
    server_id: int
    tag: str | None = None
    message_stream: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None
    include_machines: bool = False
    """Beyond Postmark: count privacy proxies' and scanners' opens and clicks too (by default, people only)."""


def _people(model: type[MessageOpen] | type[MessageClick], f: StatsFilter) -> ColumnElement[bool] | None:
    """The opens or clicks the stats count: people only, unless machines are asked for."""
    return None if f.include_machines else model.machine.is_(False)


def _first(model: type[MessageOpen] | type[MessageClick], f: StatsFilter) -> Any:
    """A recipient's first (open, or click of a link) as the stats count it: a person's first by default."""
    if not f.include_machines:
        return model.first_human
    return model.first_open if model is MessageOpen else MessageClick.first_click


def _counted(stmt: Any, model: type[MessageOpen] | type[MessageClick], f: StatsFilter) -> Any:
    people = _people(model, f)
    return stmt if people is None else stmt.where(people)


def day_of(column: Any) -> ColumnElement[str]:
    return func.to_char(func.timezone(EASTERN, column), "YYYY-MM-DD")


def _filtered(stmt: Any, f: StatsFilter, *, server_id: Any, created: Any, tag: Any, stream: Any) -> Any:
    """The statement narrowed to the filter (typed Any: Select's column types vary per caller)."""
    stmt = stmt.where(server_id == f.server_id)
    if f.tag is not None:
        stmt = stmt.where(tag == f.tag)
    if f.message_stream is not None:
        stmt = stmt.where(stream == f.message_stream)
    if f.from_date is not None:
        stmt = stmt.where(created >= f.from_date)
    if f.to_date is not None:
        stmt = stmt.where(created < f.to_date)
    return stmt


class KeyedCount(NamedTuple):
    """A count of one day and one key (a bounce type, a platform, a client family …)."""

    day: str
    key: str
    n: int


class ClickDay(NamedTuple):
    """Clicks of a day, and how many were a recipient's first click of a link."""

    day: str
    clicks: int
    unique: int
    machine: int = 0


class ReadTimeDay(NamedTuple):
    """First opens of a day read for `seconds` (capped at 21)."""

    day: str
    seconds: int
    opens: int


@dataclass(frozen=True, slots=True)
class SendDay:
    day: str
    sent: int
    tracked: int
    with_open_tracking: int
    with_link_tracking: int
    tracked_links: int


async def sends(*, session: AsyncSession, f: StatsFilter) -> list[SendDay]:
    """Per day, recipients sent to (a message counts once per recipient) and how many were tracked."""
    day = day_of(Message.created_at)
    links_on = Message.track_links != TrackLinks.NONE
    stmt = (
        select(
            day,
            func.count(),
            func.count().filter(or_(Message.track_opens, links_on)),
            func.count().filter(Message.track_opens),
            func.count().filter(links_on),
            func.coalesce(func.sum(Message.tracked_links).filter(links_on), 0),
        )
        .select_from(MessageRecipient)
        .join(Message, Message.id == MessageRecipient.message_id)
    )
    stmt = _filtered(stmt, f, server_id=Message.server_id, created=Message.created_at, tag=Message.tag, stream=Message.message_stream)
    rows = (await session.execute(stmt.group_by(day).order_by(day))).all()
    return [SendDay(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]


async def bounces_by_type(*, session: AsyncSession, f: StatsFilter) -> list[KeyedCount]:
    """Bounces per day and bounce type."""
    day = day_of(Bounce.bounced_at)
    stmt = select(day, Bounce.type, func.count())
    stmt = _filtered(stmt, f, server_id=Bounce.server_id, created=Bounce.bounced_at, tag=Bounce.tag, stream=Bounce.message_stream)
    rows = (await session.execute(stmt.group_by(day, Bounce.type).order_by(day, Bounce.type))).all()
    return [KeyedCount(r[0], r[1], int(r[2])) for r in rows]


@dataclass(frozen=True, slots=True)
class OpenDay:
    day: str
    opens: int
    unique: int
    with_client: int
    with_platform: int
    with_read_time: int
    machine: int = 0
    """Beyond Postmark: machines' opens of the day, counted whatever `include_machines` says."""


async def opens(*, session: AsyncSession, f: StatsFilter) -> list[OpenDay]:
    day = day_of(MessageOpen.created_at)
    first = _first(MessageOpen, f)
    people = _people(MessageOpen, f)
    counted = func.count() if people is None else func.count().filter(people)
    stmt = select(
        day,
        counted,
        func.count().filter(first),
        func.count().filter(and_(first, MessageOpen.client_family != UNKNOWN)),
        func.count().filter(and_(first, MessageOpen.platform != UNKNOWN)),
        func.count().filter(and_(first, MessageOpen.read_seconds > 0)),
        func.count().filter(MessageOpen.machine),
    )
    stmt = _filtered(
        stmt, f, server_id=MessageOpen.server_id, created=MessageOpen.created_at, tag=MessageOpen.tag, stream=MessageOpen.message_stream
    )
    rows = (await session.execute(stmt.group_by(day).order_by(day))).all()
    return [OpenDay(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]


async def clicks(*, session: AsyncSession, f: StatsFilter) -> list[ClickDay]:
    """Clicks per day, and first clicks of a link by a recipient (people's, unless machines are included)."""
    day = day_of(MessageClick.created_at)
    people = _people(MessageClick, f)
    counted = func.count() if people is None else func.count().filter(people)
    stmt = select(day, counted, func.count().filter(_first(MessageClick, f)), func.count().filter(MessageClick.machine))
    stmt = _filtered(
        stmt, f, server_id=MessageClick.server_id, created=MessageClick.created_at, tag=MessageClick.tag, stream=MessageClick.message_stream
    )
    rows = (await session.execute(stmt.group_by(day).order_by(day))).all()
    return [ClickDay(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def opens_by(*, session: AsyncSession, f: StatsFilter, column: InstrumentedAttribute[Any]) -> list[KeyedCount]:
    """Opens per day and value of an opens column."""
    day = day_of(MessageOpen.created_at)
    stmt = _filtered(
        _counted(select(day, column, func.count()), MessageOpen, f),
        f,
        server_id=MessageOpen.server_id,
        created=MessageOpen.created_at,
        tag=MessageOpen.tag,
        stream=MessageOpen.message_stream,
    )
    rows = (await session.execute(stmt.group_by(day, column).order_by(day, column))).all()
    return [KeyedCount(r[0], str(r[1]), int(r[2])) for r in rows]


async def clicks_by(*, session: AsyncSession, f: StatsFilter, column: InstrumentedAttribute[Any]) -> list[KeyedCount]:
    """Clicks per day and value of a clicks column."""
    day = day_of(MessageClick.created_at)
    stmt = _filtered(
        _counted(select(day, column, func.count()), MessageClick, f),
        f,
        server_id=MessageClick.server_id,
        created=MessageClick.created_at,
        tag=MessageClick.tag,
        stream=MessageClick.message_stream,
    )
    rows = (await session.execute(stmt.group_by(day, column).order_by(day, column))).all()
    return [KeyedCount(r[0], str(r[1]), int(r[2])) for r in rows]


async def read_times(*, session: AsyncSession, f: StatsFilter) -> list[ReadTimeDay]:
    """First opens per day by read seconds (capped at 21); opens without a known read time are left out."""
    day = day_of(MessageOpen.created_at)
    seconds = func.least(MessageOpen.read_seconds, 21)
    stmt = _filtered(
        select(day, seconds, func.count()).where(_first(MessageOpen, f), MessageOpen.read_seconds > 0),
        f,
        server_id=MessageOpen.server_id,
        created=MessageOpen.created_at,
        tag=MessageOpen.tag,
        stream=MessageOpen.message_stream,
    )
    rows = (await session.execute(stmt.group_by(day, seconds).order_by(day, seconds))).all()
    return [ReadTimeDay(r[0], int(r[1]), int(r[2])) for r in rows]
