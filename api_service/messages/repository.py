"""The message log: messages, their recipient rows and their events.

This package inserts a message with its recipient rows (`message_recipients`) at accept time and
deletes them (retention, data removals); the queue columns of those rows (status, lease, attempts,
outcome) are written by `delivery/`, the queue's owner. The exception is a late bounce, a DSN for
a recipient already delivered (`mark_recipient`): the bounces package records it, and it cannot
call delivery, which calls it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CursorResult,
    Table,
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
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.core.listing import page_of
from api_service.models import Message, MessageEvent, MessageRecipient, RecipientStatus
from api_service.models.message import recipients_text
from shared.constants import MAX_PAGE_WINDOW, MessageEventType, MessageStatus


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


def _recipient_clause(term: str) -> ColumnElement[bool]:
    """The recipients, joined with commas, contain `term` (any case).

    The trigram index finds the messages; but a whole address drags in its domain's trigrams
    (`gma`, `ail`, `com` …), which nearly every message has, and reading those postings cost more
    than the search (70 ms of 72 on a million messages). So the index is asked only for the part up
    to the `@`, which every match contains, and the whole term is checked on the few rows it finds,
    through the unindexed expression (the same comparison, so the answer is the same)."""
    local, at, domain = term.partition("@")
    if not (at and domain and len(local) >= 3):
        return recipients_text(Message.recipients).icontains(term, autoescape=True)
    return and_(
        recipients_text(Message.recipients).icontains(local + at, autoescape=True),
        func.array_to_string(Message.recipients, ",").icontains(term, autoescape=True),
    )


def _clauses(f: MessageFilter) -> list[ColumnElement[bool] | None]:
    """One clause per search parameter; None where the parameter was not given (or empty)."""
    return [
        _recipient_clause(f.recipient) if f.recipient else None,
        Message.from_email.icontains(f.from_email, autoescape=True) if f.from_email else None,
        Message.tag == f.tag if f.tag else None,
        Message.status == f.status if f.status else None,
        Message.subject.icontains(f.subject, autoescape=True) if f.subject else None,
        Message.message_stream == f.message_stream if f.message_stream else None,
        Message.created_at >= f.from_date if f.from_date else None,
        Message.created_at < f.to_date if f.to_date else None,
        Message.metadata_.contains(f.metadata) if f.metadata else None,
    ]


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: MessageFilter, count: int, offset: int
) -> tuple[int, list[Message]]:
    """A page of sent messages, newest first (their raw MIME is not loaded). The total counts at most
    the search window (10,000 messages, see README "At scale")."""
    return await page_of(
        session=session,
        stmt=select(Message).where(Message.server_id == server_id),
        filters=_clauses(filters),
        order_by=[Message.created_at.desc(), Message.id],
        count=count,
        offset=offset,
        options=[defer(Message.raw_mime)],
        count_at_most=MAX_PAGE_WINDOW,
        plan_per_search=True,
    )


async def get_message(*, session: AsyncSession, server_id: int, message_id: uuid.UUID) -> Message | None:
    stmt = select(Message).where(Message.server_id == server_id, Message.id == message_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def load_messages(*, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    rows = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars().all()
    return {m.id: m for m in rows}


async def list_events(*, session: AsyncSession, message_id: uuid.UUID) -> list[MessageEvent]:
    stmt = select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.created_at, MessageEvent.id)
    return list((await session.execute(stmt)).scalars().all())


# --- writes: the message log (this package is the only writer of messages and message_events) ----

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


MESSAGE_EVENTS = cast(Table, MessageEvent.__table__)


async def add_events(*, session: AsyncSession, events: list[tuple[uuid.UUID, str, MessageEventType, dict[str, Any]]]) -> None:
    """(message id, recipient, type, details) rows in one Core insert, not a unit-of-work flush per row."""
    if events:
        connection = await session.connection()
        await connection.execute(
            MESSAGE_EVENTS.insert(),
            [{"message_id": m, "recipient": r, "type": t, "details": d} for m, r, t, d in events],
        )


async def mark_recipient(*, session: AsyncSession, message_id: uuid.UUID, email: str, status: RecipientStatus) -> None:
    """A late bounce of a delivered recipient (see the module docstring): recorded outside any lease."""
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
     WHERE m.id = ANY(:ids) AND m.status IN ('Queued', 'Scheduled')
       AND NOT EXISTS (SELECT 1 FROM message_recipients r
                        WHERE r.message_id = m.id AND r.status IN ('queued', 'deferred', 'sending'))
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)))


LOCK_MESSAGES = text("SELECT id FROM messages WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE").bindparams(
    bindparam("ids", type_=ARRAY(Uuid))
)


async def settle_messages(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    """A message is Sent once none of its recipients is waiting any more (the delivery worker calls
    this after recording outcomes; the message's status is the log's, so it is written here).

    Two workers finishing a message's last recipients at once would each still see the other's
    recipient as sending and neither would settle it. Locking the message rows first (in id order,
    so two workers cannot deadlock) makes the second wait, and its count, a statement taken after
    the wait, sees the first one's committed rows.
    """
    if message_ids:
        await session.execute(LOCK_MESSAGES, {"ids": list(message_ids)})
        await session.execute(SETTLE, {"ids": list(message_ids)})


# --- scheduled sending ----------------------------------------------------------------------------

RELEASE_SCHEDULED = text("UPDATE messages SET status = 'Queued' WHERE id = ANY(:ids) AND status = 'Scheduled'").bindparams(
    bindparam("ids", type_=ARRAY(Uuid))
)


async def release_scheduled(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    """Scheduled messages whose recipients a worker just claimed become Queued (only those rows are written)."""
    if message_ids:
        await session.execute(RELEASE_SCHEDULED, {"ids": list(message_ids)})


async def cancel_scheduled(*, session: AsyncSession, message_id: uuid.UUID) -> None:
    """The message becomes Cancelled and its (locked, unreleased) recipient rows go: nothing is left to deliver."""
    await session.execute(update(Message).where(Message.id == message_id).values(status=MessageStatus.CANCELLED.value))
    await session.execute(delete(MessageRecipient).where(MessageRecipient.message_id == message_id))


async def set_send_at(*, session: AsyncSession, message_id: uuid.UUID, send_at: datetime) -> None:
    await session.execute(update(Message).where(Message.id == message_id).values(send_at=send_at))


# --- for the tracking URLs (opens, clicks and unsubscribes are recorded by tracking/) ---------------


async def get_message_summary(*, session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    """A message without its raw MIME (for recording its opens, clicks and unsubscribes)."""
    stmt = select(Message).options(defer(Message.raw_mime)).where(Message.id == message_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def metadata_of(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    rows = (await session.execute(select(Message.id, Message.metadata_).where(Message.id.in_(message_ids)))).all()
    return {row[0]: row[1] for row in rows}


async def delivered_at(*, session: AsyncSession, message_id: uuid.UUID, email: str) -> datetime | None:
    """When the next hop accepted the message for this recipient (None: not delivered, or not known)."""
    stmt = select(MessageRecipient.delivered_at).where(
        MessageRecipient.message_id == message_id, func.lower(MessageRecipient.email) == email.lower()
    )
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


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
