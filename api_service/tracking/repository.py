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


async def _insert_first(
    *, session: AsyncSession, model: type[MessageOpen] | type[MessageClick], first: str, values: dict[str, Any], human: bool
) -> Any:
    """Insert a hit, marked as the first (`first`: Postmark's, of any reader) and as a person's first (`first_human`)
    where it is one, race-free: each flag has a partial unique index, and ON CONFLICT DO NOTHING (with no target it
    covers both) tries the likelier combinations first."""
    tries = [(True, human), (False, human), (True, False)] if human else [(True, False)]
    for is_first, is_human in tries:
        stmt = pg_insert(model).values(**values, **{first: is_first}, first_human=is_human).on_conflict_do_nothing().returning(model)
        row = (await session.execute(stmt)).scalar_one_or_none()
        if row is not None:
            return row
    return (await session.execute(pg_insert(model).values(**values, **{first: False}, first_human=False).returning(model))).scalar_one()


async def insert_open(*, session: AsyncSession, values: dict[str, Any]) -> MessageOpen:
    """Insert an open; the first of its recipient, and a person's first, are marked so (race-free)."""
    row: MessageOpen = await _insert_first(
        session=session, model=MessageOpen, first="first_open", values=values, human=not values["machine"]
    )
    return row


async def insert_click(*, session: AsyncSession, values: dict[str, Any]) -> MessageClick:
    """Insert a click; the first of its link by its recipient, and a person's first of it, are marked so."""
    row: MessageClick = await _insert_first(
        session=session, model=MessageClick, first="first_click", values=values, human=not values["machine"]
    )
    return row


RECENT_LINKS = text(
    """
    SELECT count(DISTINCT link_sha256) FROM message_clicks
     WHERE message_id = :message_id AND recipient = :recipient AND link_sha256 <> :link
       AND created_at >= :since
    """
)


async def other_links_clicked_since(
    *, session: AsyncSession, message_id: uuid.UUID, recipient: str, link_sha256: str, since: datetime
) -> int:
    """How many other links of the message the recipient clicked since `since` (a scanner walks them all at once)."""
    params = {"message_id": message_id, "recipient": recipient, "link": link_sha256, "since": since}
    return int((await session.execute(RECENT_LINKS, params)).scalar_one())


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
