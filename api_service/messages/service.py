"""The message store: messages, their recipients (the delivery queue) and their events.

This package is the only writer of those tables: intake stores through `store`, the delivery
worker claims and records through the functions below.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound
from api_service.messages import repository
from api_service.messages.repository import Claimed
from api_service.messages.scrub import scrub_address, scrub_text
from api_service.models import Message, MessageClick, MessageEvent, MessageOpen, MessageRecipient, RecipientStatus
from api_service.tracking.useragent import ClientInfo
from shared.constants import ClickLocation, ErrorCode, MessageEventType

__all__ = ["ActivityFilter", "Claimed"]

ActivityFilter = repository.ActivityFilter


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
    parsed = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return (
        text.get_content() if text is not None else "",
        html.get_content() if html is not None else "",
    )


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


async def claim_due(*, session: AsyncSession, limit: int, lease_seconds: float) -> list[Claimed]:
    """Due recipients and expired leases, held by this claim (one lease token) for `lease_seconds`."""
    return await repository.claim(session=session, limit=limit, lease_seconds=lease_seconds)


async def extend_leases(*, session: AsyncSession, items: list[Claimed], lease_seconds: float) -> int:
    """The heartbeat: push the lease of the rows a claim still holds (one token per claim)."""
    held = 0
    for token in {i.lease_token for i in items}:
        ids = [i.id for i in items if i.lease_token == token]
        held += await repository.extend_leases(session=session, ids=ids, token=token, lease_seconds=lease_seconds)
    return held


async def record_delivered(*, session: AsyncSession, item: Claimed, response: str, at: datetime, details: dict[str, Any]) -> bool:
    """False (nothing recorded) when the claim lost the row to another worker."""
    if not await repository.finish(session=session, item=item, status=RecipientStatus.DELIVERED, response=response, delivered_at=at):
        return False
    await repository.add_event(
        session=session, message_id=item.message_id, recipient=item.email, type_=MessageEventType.DELIVERED, details=details
    )
    return True


@dataclass(frozen=True, slots=True)
class Delivered:
    """A recipient the next hop accepted: its reply and the event's details."""

    item: Claimed
    response: str
    details: dict[str, Any]


async def record_delivered_many(*, session: AsyncSession, delivered: list[Delivered], at: datetime) -> list[Delivered]:
    """`record_delivered` for many recipients in two statements; returns those recorded (the claim
    still held them: each row is fenced by its own lease token)."""
    held = await repository.finish_delivered(session=session, items=[(d.item, d.response) for d in delivered], at=at)
    recorded = [d for d in delivered if d.item.id in held]
    await repository.add_events(
        session=session, events=[(d.item.message_id, d.item.email, MessageEventType.DELIVERED, d.details) for d in recorded]
    )
    return recorded


async def record_deferred(*, session: AsyncSession, item: Claimed, response: str, until: datetime, details: dict[str, Any]) -> bool:
    """False (nothing recorded) when the claim lost the row to another worker."""
    if not await repository.defer_recipient(session=session, item=item, response=response, at=until):
        return False
    await repository.add_event(
        session=session, message_id=item.message_id, recipient=item.email, type_=MessageEventType.TRANSIENT, details=details
    )
    return True


async def release_bounced(*, session: AsyncSession, item: Claimed, response: str) -> bool:
    """Mark the recipient bounced; False (nothing written) when the claim lost the row. Its event
    follows with `record_bounced_event`, once the bounce it names exists."""
    return await repository.finish(session=session, item=item, status=RecipientStatus.BOUNCED, response=response)


async def record_bounced_event(*, session: AsyncSession, item: Claimed, details: dict[str, Any]) -> None:
    await repository.add_event(
        session=session, message_id=item.message_id, recipient=item.email, type_=MessageEventType.BOUNCED, details=details
    )


async def mark_bounced(*, session: AsyncSession, message_id: uuid.UUID, email: str) -> None:
    """A late bounce (a DSN mailed back) for a recipient the next hop had accepted."""
    await repository.mark_recipient(session=session, message_id=message_id, email=email, status=RecipientStatus.BOUNCED)


async def settle(*, session: AsyncSession, message_ids: set[uuid.UUID]) -> None:
    await repository.settle_messages(session=session, message_ids=message_ids)


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: repository.MessageFilter, count: int, offset: int
) -> tuple[int, list[Message]]:
    return await repository.list_messages(session=session, server_id=server_id, filters=filters, count=count, offset=offset)


async def list_events(*, session: AsyncSession, message_id: uuid.UUID) -> list[MessageEvent]:
    return await repository.list_events(session=session, message_id=message_id)


# --- opens, clicks and subscription changes -------------------------------------------------------


async def get_message_summary(*, session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    """A message without its raw MIME, by id alone (the tracking endpoints know no server yet)."""
    return await repository.get_message_summary(session=session, message_id=message_id)


def _reader(message: Message, recipient: str, client: ClientInfo, ip: str, at: datetime) -> dict[str, Any]:
    return {
        "server_id": message.server_id,
        "message_id": message.id,
        "message_stream": message.message_stream,
        "tag": message.tag,
        "recipient": recipient,
        "user_agent": client.user_agent,
        "client_name": client.client_name,
        "client_company": client.client_company,
        "client_family": client.client_family,
        "os_name": client.os_name,
        "os_company": client.os_company,
        "os_family": client.os_family,
        "platform": client.platform.value,
        "ip": ip[:45],
        "country": "",
        "region": "",
        "city": "",
        "created_at": at,
    }


async def record_open(*, session: AsyncSession, message: Message, recipient: str, client: ClientInfo, ip: str, at: datetime) -> MessageOpen:
    """An `Opened` event; `first_open` on the returned row says whether it was the recipient's first."""
    row = await repository.insert_open(session=session, values=_reader(message, recipient, client, ip, at) | {"read_seconds": 0})
    await repository.add_event(
        session=session,
        message_id=message.id,
        recipient=recipient,
        type_=MessageEventType.OPENED,
        details={"Summary": f"Email opened with {client.client_name} on {client.os_name}"},
    )
    return row


async def record_click(
    *,
    session: AsyncSession,
    message: Message,
    recipient: str,
    link: str,
    location: ClickLocation,
    client: ClientInfo,
    ip: str,
    at: datetime,
) -> MessageClick:
    """A `LinkClicked` event; `first_click` says whether the recipient followed this link before."""
    values = _reader(message, recipient, client, ip, at) | {
        "click_location": location.value,
        "original_link": link,
        "link_sha256": hashlib.sha256(link.encode()).hexdigest(),
    }
    row = await repository.insert_click(session=session, values=values)
    await repository.add_event(
        session=session,
        message_id=message.id,
        recipient=recipient,
        type_=MessageEventType.LINK_CLICKED,
        details={"Summary": f"Link clicked with {client.client_name} on {client.os_name}", "Link": link, "ClickLocation": location.value},
    )
    return row


async def record_subscription_change(*, session: AsyncSession, message_id: uuid.UUID, recipient: str, origin: str, suppress: bool) -> None:
    await repository.add_event(
        session=session,
        message_id=message_id,
        recipient=recipient,
        type_=MessageEventType.SUBSCRIPTION_CHANGED,
        details={"Origin": origin, "SuppressSending": suppress},
    )


async def list_opens(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int
) -> tuple[int, list[MessageOpen]]:
    return await repository.list_activity(
        session=session, model=MessageOpen, server_id=server_id, filters=filters, count=count, offset=offset
    )


async def list_clicks(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int
) -> tuple[int, list[MessageClick]]:
    return await repository.list_activity(
        session=session, model=MessageClick, server_id=server_id, filters=filters, count=count, offset=offset
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
