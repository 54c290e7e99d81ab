from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    CursorResult,
    Select,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.models import Message, MessageClick, MessageEvent, MessageOpen, MessageRecipient, RecipientStatus
from shared.constants import MessageEventType


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


# --- writes: the message store and its delivery queue (this package is their only writer) ----------

MESSAGES = cast(Table, Message.__table__)
RECIPIENTS = cast(Table, MessageRecipient.__table__)
MESSAGE_COLUMNS = [(column.key, attribute.key) for attribute in inspect(Message).column_attrs for column in attribute.columns]
RECIPIENT_COLUMNS = ("message_id", "email", "kind", "status", "next_attempt_at")


async def insert_messages(*, session: AsyncSession, messages: list[Message], recipients: list[MessageRecipient]) -> None:
    """Core inserts on the session's connection: the ORM's unit of work costs more than the SQL
    (see bench/RESULTS.md). The rows are built as typed models with every column set (no
    Python-side defaults apply here)."""
    connection = await session.connection()
    if messages:
        await connection.execute(
            MESSAGES.insert(),
            [{column: getattr(m, attribute) for column, attribute in MESSAGE_COLUMNS} for m in messages],
        )
    if recipients:
        await connection.execute(RECIPIENTS.insert(), [{c: getattr(r, c) for c in RECIPIENT_COLUMNS} for r in recipients])


# Two branches, each served by its own partial index (ix_message_recipients_due and
# ix_message_recipients_leased): `due OR expired` in one WHERE would scan the whole table, delivered
# rows included, on every poll. Expired leases go first: they are the oldest work.
CLAIM = text(
    """
    WITH expired AS (
           SELECT id FROM message_recipients
            WHERE status = 'sending' AND lease_until < now()
            ORDER BY lease_until
            LIMIT :limit
            FOR UPDATE SKIP LOCKED),
         due AS (
           SELECT id FROM message_recipients
            WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED)
    UPDATE message_recipients AS r
       SET status = 'sending', lease_until = now() + make_interval(secs => :lease), attempts = r.attempts + 1,
           lease_token = :token
     WHERE r.id IN (SELECT id FROM (SELECT id FROM expired UNION ALL SELECT id FROM due) AS both_ LIMIT :limit)
    RETURNING r.id, r.message_id, r.email, r.attempts, r.lease_token
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A recipient this worker holds: every later update names `lease_token` (fencing), so a worker
    whose lease ran out and was taken over cannot overwrite what the new holder records."""

    id: int
    message_id: uuid.UUID
    email: str
    attempts: int
    lease_token: uuid.UUID


async def claim(*, session: AsyncSession, limit: int, lease_seconds: float) -> list[Claimed]:
    rows = (await session.execute(CLAIM, {"limit": limit, "lease": lease_seconds, "token": uuid.uuid4()})).all()
    return [Claimed(id=r[0], message_id=r[1], email=r[2], attempts=r[3], lease_token=r[4]) for r in rows]


EXTEND = text(
    """
    UPDATE message_recipients SET lease_until = now() + make_interval(secs => :lease)
     WHERE id = ANY(:ids) AND lease_token = :token AND status = 'sending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def extend_leases(*, session: AsyncSession, ids: list[int], token: uuid.UUID, lease_seconds: float) -> int:
    """Push the lease of the rows this claim still holds; how many it still holds."""
    result = await session.execute(EXTEND, {"ids": ids, "token": token, "lease": lease_seconds})
    return int(cast(CursorResult[Any], result).rowcount)


async def load_messages(*, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    rows = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars().all()
    return {m.id: m for m in rows}


def _held(item: Claimed) -> ColumnElement[bool]:
    return and_(
        MessageRecipient.id == item.id,
        MessageRecipient.lease_token == item.lease_token,
        MessageRecipient.status == RecipientStatus.SENDING,
    )


async def finish(
    *, session: AsyncSession, item: Claimed, status: RecipientStatus, response: str, delivered_at: datetime | None = None
) -> bool:
    """Record a final status; False (and nothing written) when this claim no longer holds the row."""
    result = await session.execute(
        update(MessageRecipient)
        .where(_held(item))
        .values(status=status, last_response=response[:2000], lease_until=None, lease_token=None, delivered_at=delivered_at)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


FINISH_DELIVERED = text(
    """
    UPDATE message_recipients AS r
       SET status = 'delivered', last_response = u.response, lease_until = NULL, lease_token = NULL, delivered_at = :at
      FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[]), CAST(:responses AS text[])) AS u(id, token, response)
     WHERE r.id = u.id AND r.lease_token = u.token AND r.status = 'sending'
    RETURNING r.id
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("tokens", type_=ARRAY(Uuid)), bindparam("responses", type_=ARRAY(Text)))


async def finish_delivered(*, session: AsyncSession, items: list[tuple[Claimed, str]], at: datetime) -> set[int]:
    """Mark many recipients delivered in one statement, each fenced by its own lease token; the ids
    of the rows this worker still held (only those were written)."""
    if not items:
        return set()
    params = {
        "ids": [item.id for item, _ in items],
        "tokens": [item.lease_token for item, _ in items],
        "responses": [response[:2000] for _, response in items],
        "at": at,
    }
    return set((await session.execute(FINISH_DELIVERED, params)).scalars().all())


MESSAGE_EVENTS = cast(Table, MessageEvent.__table__)


async def add_events(*, session: AsyncSession, events: list[tuple[uuid.UUID, str, MessageEventType, dict[str, Any]]]) -> None:
    """(message id, recipient, type, details) rows in one Core insert, not a unit-of-work flush per row."""
    if events:
        connection = await session.connection()
        await connection.execute(
            MESSAGE_EVENTS.insert(),
            [{"message_id": m, "recipient": r, "type": t, "details": d} for m, r, t, d in events],
        )


async def defer_recipient(*, session: AsyncSession, item: Claimed, response: str, at: datetime) -> bool:
    """Back to the queue until `at`; False (and nothing written) when this claim no longer holds the row."""
    result = await session.execute(
        update(MessageRecipient)
        .where(_held(item))
        .values(status=RecipientStatus.DEFERRED, last_response=response[:2000], lease_until=None, lease_token=None, next_attempt_at=at)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


async def mark_recipient(*, session: AsyncSession, message_id: uuid.UUID, email: str, status: RecipientStatus) -> None:
    await session.execute(
        update(MessageRecipient).where(MessageRecipient.message_id == message_id, MessageRecipient.email == email).values(status=status)
    )


async def add_event(
    *, session: AsyncSession, message_id: uuid.UUID, recipient: str, type_: MessageEventType, details: dict[str, Any]
) -> None:
    session.add(MessageEvent(message_id=message_id, recipient=recipient, type=type_, details=details))


SETTLE = text(
    """
    UPDATE messages AS m SET status = 'Sent'
     WHERE m.id = ANY(:ids) AND m.status = 'Queued'
       AND NOT EXISTS (SELECT 1 FROM message_recipients r
                        WHERE r.message_id = m.id AND r.status IN ('queued', 'deferred', 'sending'))
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)))


LOCK_MESSAGES = text("SELECT id FROM messages WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE").bindparams(
    bindparam("ids", type_=ARRAY(Uuid))
)


async def settle_messages(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    """A message is Sent once none of its recipients is waiting any more.

    Two workers finishing a message's last recipients at once would each still see the other's
    recipient as sending and neither would settle it. Locking the message rows first (in id order,
    so two workers cannot deadlock) makes the second wait, and its count, a statement taken after
    the wait, sees the first one's committed rows.
    """
    if message_ids:
        await session.execute(LOCK_MESSAGES, {"ids": list(message_ids)})
        await session.execute(SETTLE, {"ids": list(message_ids)})


# --- opens and clicks (this package writes them, with their message events) -------------------------


async def get_message_summary(*, session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    """A message without its raw MIME (for recording its opens, clicks and unsubscribes)."""
    stmt = select(Message).options(defer(Message.raw_mime)).where(Message.id == message_id)
    return (await session.execute(stmt)).scalar_one_or_none()


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
    stmt: Select[Any] = select(model).where(model.server_id == server_id)
    if filters.message_id:
        stmt = stmt.where(model.message_id == filters.message_id)
    if filters.recipient:
        stmt = stmt.where(model.recipient.icontains(filters.recipient, autoescape=True))
    for name in ACTIVITY_EQUALS:
        value = getattr(filters, name)
        if value:
            column = getattr(model, name)
            stmt = stmt.where(func.lower(column) == value.lower()) if name == "platform" else stmt.where(column == value)
    for name in ACTIVITY_CONTAINS:
        value = getattr(filters, name)
        if value:
            stmt = stmt.where(getattr(model, name).icontains(value, autoescape=True))
    if filters.from_date:
        stmt = stmt.where(model.created_at >= filters.from_date)
    if filters.to_date:
        stmt = stmt.where(model.created_at < filters.to_date)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    page = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(count).offset(offset)
    return total, list((await session.execute(page)).scalars().all())


async def metadata_of(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    rows = (await session.execute(select(Message.id, Message.metadata_).where(Message.id.in_(message_ids)))).all()
    return {row[0]: row[1] for row in rows}


# --- data removal --------------------------------------------------------------------------------

MESSAGES_TO = text(
    """
    SELECT m.id FROM messages m
     WHERE EXISTS (SELECT 1 FROM unnest(m.recipients) AS a(email) WHERE lower(a.email) = :email)
       AND NOT EXISTS (SELECT 1 FROM message_recipients r
                        WHERE r.message_id = m.id AND r.status = 'sending' AND r.lease_until > now())
     ORDER BY m.id LIMIT :limit
       FOR UPDATE OF m SKIP LOCKED
    """
)
COUNT_BEING_DELIVERED = text(
    """
    SELECT count(*) FROM messages m
     WHERE EXISTS (SELECT 1 FROM unnest(m.recipients) AS a(email) WHERE lower(a.email) = :email)
       AND EXISTS (SELECT 1 FROM message_recipients r
                    WHERE r.message_id = m.id AND r.status = 'sending' AND r.lease_until > now())
    """
)


async def messages_to(*, session: AsyncSession, email: str, limit: int) -> list[Message]:
    """Up to `limit` messages with the (lower-cased) address among their recipients, locked; none of
    whose recipients a worker is delivering right now (those are left for a later round)."""
    ids = (await session.execute(MESSAGES_TO, {"email": email, "limit": limit})).scalars().all()
    if not ids:
        return []
    return list((await session.execute(select(Message).where(Message.id.in_(ids)).order_by(Message.id))).scalars().all())


async def count_being_delivered_to(*, session: AsyncSession, email: str) -> int:
    return int((await session.execute(COUNT_BEING_DELIVERED, {"email": email})).scalar_one())


async def delete_messages(*, session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """With their recipients and events (ON DELETE CASCADE); their bounces keep no message id."""
    if ids:
        await session.execute(delete(Message).where(Message.id.in_(ids)))


async def forget_recipient_rows(*, session: AsyncSession, message_id: uuid.UUID, email: str) -> None:
    """The address's delivery queue row and events on one message."""
    await session.execute(
        delete(MessageRecipient).where(MessageRecipient.message_id == message_id, func.lower(MessageRecipient.email) == email)
    )
    await session.execute(delete(MessageEvent).where(MessageEvent.message_id == message_id, func.lower(MessageEvent.recipient) == email))


# --- retention -----------------------------------------------------------------------------------

# The oldest expired messages of one server, by the (server_id, created_at) index; a message with a
# recipient still waiting for delivery stays, whatever its age. SKIP LOCKED: a message a request is
# touching right now (an open, a click, a data removal) is left for the next round, not waited for.
DELETE_EXPIRED = text(
    """
    DELETE FROM messages WHERE id IN (
        SELECT m.id FROM messages m
         WHERE m.server_id = :server_id AND m.created_at < now() - make_interval(days => :days)
           AND NOT EXISTS (SELECT 1 FROM message_recipients r
                            WHERE r.message_id = m.id AND r.status IN ('queued', 'sending', 'deferred'))
         ORDER BY m.created_at
         LIMIT :limit
           FOR UPDATE OF m SKIP LOCKED)
    """
)


async def delete_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's messages older than `days`, with their recipients, events, opens and
    clicks (ON DELETE CASCADE) and raw MIME; their bounces keep no message id."""
    result = cast(CursorResult[Any], await session.execute(DELETE_EXPIRED, {"server_id": server_id, "days": days, "limit": limit}))
    return int(result.rowcount)
