"""Opens and clicks: the `message_opens` and `message_clicks` tables, of which this package is the
only writer (their rows go with their message through ON DELETE CASCADE, when retention or a
data removal deletes it; `delete_for_recipient` when a data removal keeps the message)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.listing import Clause, page_of
from api_service.models import MessageClick, MessageOpen


async def insert_open(*, session: AsyncSession, values: dict[str, Any]) -> MessageOpen:
    """Insert an open; the first of its recipient is marked so, race-free (a partial unique index)."""
    first = (
        pg_insert(MessageOpen)
        .values(**values, first_open=True)
        .on_conflict_do_nothing(index_elements=["message_id", "recipient"], index_where=text("first_open"))
        .returning(MessageOpen)
    )
    row = (await session.execute(first)).scalar_one_or_none()
    if row is None:
        row = (await session.execute(pg_insert(MessageOpen).values(**values, first_open=False).returning(MessageOpen))).scalar_one()
    return row


async def insert_click(*, session: AsyncSession, values: dict[str, Any]) -> MessageClick:
    first = (
        pg_insert(MessageClick)
        .values(**values, first_click=True)
        .on_conflict_do_nothing(index_elements=["message_id", "recipient", "link_sha256"], index_where=text("first_click"))
        .returning(MessageClick)
    )
    row = (await session.execute(first)).scalar_one_or_none()
    if row is None:
        row = (await session.execute(pg_insert(MessageClick).values(**values, first_click=False).returning(MessageClick))).scalar_one()
    return row


@dataclass(slots=True)
class ActivityFilter:
    """Filters of `/messages/outbound/opens` and `/clicks`."""

    message_id: uuid.UUID | None = None
    recipient: str | None = None
    tag: str | None = None
    message_stream: str | None = None
    client_name: str | None = None
    client_company: str | None = None
    client_family: str | None = None
    os_name: str | None = None
    os_family: str | None = None
    os_company: str | None = None
    platform: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None


ACTIVITY_EQUALS = ("tag", "message_stream", "platform")
ACTIVITY_CONTAINS = ("client_name", "client_company", "client_family", "os_name", "os_family", "os_company", "country", "region", "city")


async def list_activity(
    *,
    session: AsyncSession,
    model: type[MessageOpen] | type[MessageClick],
    server_id: int,
    filters: ActivityFilter,
    count: int,
    offset: int,
) -> tuple[int, list[Any]]:
    equals = [
        (func.lower(getattr(model, name)) == value.lower()) if name == "platform" else (getattr(model, name) == value)
        for name in ACTIVITY_EQUALS
        if (value := getattr(filters, name))
    ]
    contains = [getattr(model, name).icontains(value, autoescape=True) for name in ACTIVITY_CONTAINS if (value := getattr(filters, name))]
    clauses: list[Clause] = [
        model.message_id == filters.message_id if filters.message_id else None,
        model.recipient.icontains(filters.recipient, autoescape=True) if filters.recipient else None,
        *equals,
        *contains,
        model.created_at >= filters.from_date if filters.from_date else None,
        model.created_at < filters.to_date if filters.to_date else None,
    ]
    stmt: Select[Any] = select(model).where(model.server_id == server_id)
    return await page_of(
        session=session, stmt=stmt, filters=clauses, order_by=[model.created_at.desc(), model.id.desc()], count=count, offset=offset
    )


async def delete_for_recipient(*, session: AsyncSession, message_ids: list[uuid.UUID], email: str) -> int:
    """Delete the opens and clicks of the (lower-cased) address on these messages; returns how many."""
    if not message_ids:
        return 0
    removed = 0
    for model in (MessageOpen, MessageClick):
        stmt = delete(model).where(model.message_id.in_(message_ids), func.lower(model.recipient) == email)
        result = await session.execute(stmt.returning(model.id))
        removed += len(result.all())
    return removed
