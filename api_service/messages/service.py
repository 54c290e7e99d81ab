"""The message log: messages, their recipient rows and their events.

This package is the only writer of `messages` and `message_events`, and inserts and deletes the
rows of `message_recipients`: intake stores through `store`; `delivery/` owns the queue columns of
those rows (leases and outcomes) and adds the events of its outcomes through `add_events`;
`tracking/` owns opens and clicks and adds their events through `add_event`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound
from api_service.mail.parse import decoded, parse_head, text_bodies
from api_service.messages import repository
from api_service.messages.scrub import scrub_address, scrub_text
from api_service.models import Message, MessageEvent, MessageRecipient, RecipientStatus
from shared.constants import ErrorCode, MessageEventType

EventRow = tuple[uuid.UUID, str, MessageEventType, dict[str, Any]]
"""(message id, recipient, type, details) of one event."""
__all__ = ["MessageFilter"]

MessageFilter = repository.MessageFilter


def parse_message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Message {value} was not found.") from None


async def get_message_or_raise(*, session: AsyncSession, server_id: int, message_id: str) -> Message:
    message = await repository.get_message(session=session, server_id=server_id, message_id=parse_message_id(message_id))
    if message is None:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Message {message_id} was not found.")
    return message


def bodies(raw: bytes) -> tuple[str, str]:
    """(TextBody, HtmlBody) of a stored message; attachments are never returned."""
    return text_bodies(raw)


def headers_of(raw: bytes) -> list[tuple[str, str]]:
    """A stored message's header fields in order, encoded words decoded, for people to read.

    compat32 keeps every field as sent (the default policy would refold or reject odd ones);
    a word that cannot be decoded is shown as it was stored."""
    return [(name, decoded(value)) for name, value in parse_head(raw).items()]


async def get_messages(*, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    return await repository.load_messages(session=session, ids=ids)


# --- writes ------------------------------------------------------------------------------------


def queue_rows(recipients: list[str], *, message_id: uuid.UUID, kinds: dict[str, str], at: datetime) -> list[MessageRecipient]:
    """Delivery queue rows, due at once; `kinds` maps a lower-cased address to to/cc/bcc."""
    return [
        MessageRecipient(
            message_id=message_id, email=r, kind=kinds.get(r.lower(), "bcc"), status=RecipientStatus.QUEUED, next_attempt_at=at
        )
        for r in recipients
    ]


async def store(*, session: AsyncSession, messages: list[Message], recipients: list[MessageRecipient]) -> None:
    """Store accepted messages and queue their recipients, in the caller's transaction."""
    await repository.insert_messages(session=session, messages=messages, recipients=recipients)


async def add_event(
    *, session: AsyncSession, message_id: uuid.UUID, recipient: str, type_: MessageEventType, details: dict[str, Any]
) -> None:
    """One event, added to the session (written with its next flush)."""
    await repository.add_event(session=session, message_id=message_id, recipient=recipient, type_=type_, details=details)


async def add_events(*, session: AsyncSession, events: list[EventRow]) -> None:
    """Many events in one statement (the delivery worker's group-committed outcomes)."""
    await repository.add_events(session=session, events=events)


async def mark_bounced(*, session: AsyncSession, message_id: uuid.UUID, email: str) -> None:
    """A late bounce (a DSN mailed back) for a recipient the next hop had accepted."""
    await repository.mark_recipient(session=session, message_id=message_id, email=email, status=RecipientStatus.BOUNCED)


async def settle(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    """Mark Sent the messages none of whose recipients is waiting for delivery any more."""
    await repository.settle_messages(session=session, message_ids=message_ids)


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: repository.MessageFilter, count: int, offset: int
) -> tuple[int, list[Message]]:
    return await repository.list_messages(session=session, server_id=server_id, filters=filters, count=count, offset=offset)


async def list_events(*, session: AsyncSession, message_id: uuid.UUID) -> list[MessageEvent]:
    return await repository.list_events(session=session, message_id=message_id)


# --- scheduled sending (the queue rows are locked by `delivery.queue` first, as its claim locks them) -------


async def release_scheduled(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    await repository.release_scheduled(session=session, message_ids=message_ids)


async def cancel_scheduled(*, session: AsyncSession, message_id: uuid.UUID) -> None:
    await repository.cancel_scheduled(session=session, message_id=message_id)


async def set_send_at(*, session: AsyncSession, message_id: uuid.UUID, send_at: datetime) -> None:
    await repository.set_send_at(session=session, message_id=message_id, send_at=send_at)


# --- for the tracking URLs --------------------------------------------------------------------------


async def get_message_summary(*, session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    """A message without its raw MIME, by id alone (the tracking endpoints know no server yet)."""
    return await repository.get_message_summary(session=session, message_id=message_id)


async def delivered_at(*, session: AsyncSession, message_id: uuid.UUID, email: str) -> datetime | None:
    return await repository.delivered_at(session=session, message_id=message_id, email=email)


async def record_subscription_change(*, session: AsyncSession, message_id: uuid.UUID, recipient: str, origin: str, suppress: bool) -> None:
    await repository.add_event(
        session=session,
        message_id=message_id,
        recipient=recipient,
        type_=MessageEventType.SUBSCRIPTION_CHANGED,
        details={"Origin": origin, "SuppressSending": suppress},
    )


async def metadata_of(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    return await repository.metadata_of(session=session, message_ids=message_ids) if message_ids else {}


# --- data removal --------------------------------------------------------------------------------


@dataclass(slots=True)
class Forgotten:
    """What one round of `forget_recipient` did."""

    deleted: int = 0
    scrubbed: list[uuid.UUID] = field(default_factory=list)
    busy: int = 0


def _swap(entries: list[dict[str, Any]], email: str, placeholder: str) -> list[dict[str, Any]]:
    return [{"Email": placeholder, "Name": ""} if str(e.get("Email", "")).lower() == email else e for e in entries]


async def forget_recipient(*, session: AsyncSession, email: str, placeholder: str, limit: int) -> Forgotten:
    """Up to `limit` messages to the (lower-cased) address: one with nobody else to go to is deleted
    with its events; in one with other recipients the address becomes `placeholder` (recipient
    lists, raw MIME, subject, metadata) and its own queue row and events are deleted. Messages being
    delivered right now are left for a later round and counted as `busy`."""
    rows = await repository.messages_to(session=session, email=email, limit=limit)
    done = Forgotten()
    doomed: list[uuid.UUID] = []
    for message in rows:
        if all(r.lower() in (email, placeholder) for r in message.recipients):
            doomed.append(message.id)
            continue
        message.recipients = [placeholder if r.lower() == email else r for r in message.recipients]
        message.to, message.cc, message.bcc = (_swap(entries, email, placeholder) for entries in (message.to, message.cc, message.bcc))
        message.raw_mime = scrub_address(message.raw_mime, email, placeholder)
        message.subject = scrub_text(message.subject, email, placeholder)
        message.metadata_ = {key: scrub_text(value, email, placeholder) for key, value in message.metadata_.items()}
        await repository.forget_recipient_rows(session=session, message_id=message.id, email=email)
        done.scrubbed.append(message.id)
    await session.flush()
    await repository.delete_messages(session=session, ids=doomed)
    done.deleted = len(doomed)
    if len(rows) < limit:
        done.busy = await repository.count_being_delivered_to(session=session, email=email)
    return done


async def purge_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Retention: one batch of the server's messages older than `days` and everything hanging off them;
    messages still queued for delivery stay."""
    return await repository.delete_expired(session=session, server_id=server_id, days=days, limit=limit)
