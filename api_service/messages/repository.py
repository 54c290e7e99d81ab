from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.models import Message, MessageEvent


@dataclass(slots=True)
class MessageFilter:
    recipient: str | None = None
    from_email: str | None = None
    tag: str | None = None
    status: str | None = None
    subject: str | None = None
    message_stream: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None
    metadata: dict[str, str] | None = None


def _filtered(server_id: int, f: MessageFilter) -> Select[Message]:
    stmt = select(Message).where(Message.server_id == server_id)
    if f.recipient:
        stmt = stmt.where(func.array_to_string(Message.recipients, ",").icontains(f.recipient, autoescape=True))
    if f.from_email:
        stmt = stmt.where(Message.from_email.icontains(f.from_email, autoescape=True))
    if f.tag:
        stmt = stmt.where(Message.tag == f.tag)
    if f.status:
        stmt = stmt.where(Message.status == f.status)
    if f.subject:
        stmt = stmt.where(Message.subject.icontains(f.subject, autoescape=True))
    if f.message_stream:
        stmt = stmt.where(Message.message_stream == f.message_stream)
    if f.from_date:
        stmt = stmt.where(Message.created_at >= f.from_date)
    if f.to_date:
        stmt = stmt.where(Message.created_at < f.to_date)
    if f.metadata:
        stmt = stmt.where(Message.metadata_.contains(f.metadata))
    return stmt


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: MessageFilter, count: int, offset: int
) -> tuple[int, list[Message]]:
    stmt = _filtered(server_id, filters)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    page = stmt.options(defer(Message.raw_mime)).order_by(Message.created_at.desc(), Message.id).limit(count).offset(offset)
    return total, list((await session.execute(page)).scalars().all())


async def get_message(*, session: AsyncSession, server_id: int, message_id: uuid.UUID) -> Message | None:
    stmt = select(Message).where(Message.server_id == server_id, Message.id == message_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_events(*, session: AsyncSession, message_id: uuid.UUID) -> list[MessageEvent]:
    stmt = select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.created_at, MessageEvent.id)
    return list((await session.execute(stmt)).scalars().all())


async def count_per_day(*, session: AsyncSession, server_id: int, since: datetime) -> dict[date, int]:
    """Messages accepted per UTC day since `since` (days without any are absent)."""
    day = func.date(func.timezone("UTC", Message.created_at))
    stmt = select(day, func.count()).where(Message.server_id == server_id, Message.created_at >= since).group_by(day)
    return {d: int(c) for d, c in (await session.execute(stmt)).all()}
