"""The message store: messages, their recipients (the delivery queue) and their events.

This package is the only writer of those tables: intake stores through `store`, the delivery
worker claims and records through the functions below.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound
from api_service.messages import repository
from api_service.messages.repository import Claimed
from api_service.models import Message, MessageEvent, MessageRecipient, RecipientStatus
from shared.constants import ErrorCode, MessageEventType

__all__ = ["Claimed"]


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
            message_id=message_id, email=r, kind=kinds.get(r.lower(), "bcc"), status=RecipientStatus.QUEUED.value, next_attempt_at=at
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
