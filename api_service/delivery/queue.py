"""The delivery queue's service: claim due recipients, hold them with a lease, and record what
became of each attempt (delivered, deferred, bounced).

Every write is fenced by the claim's lease token (see `repository.Claimed`): a worker whose lease
ran out and was taken over records nothing. The events of an outcome belong to the message log
and are added through `messages`; a batch of deliveries stays two statements (the queue rows,
then their events), as before the queue had a package of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.delivery import repository
from api_service.delivery.repository import Claimed
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.messages import service as messages
from api_service.models import Message, RecipientStatus
from shared.constants import MessageEventType, MessageStatus

__all__ = ["Claimed", "Delivered"]


async def claim_due(*, session: AsyncSession, limit: int, lease_seconds: float) -> list[Claimed]:
    """Due recipients and expired leases, held by this claim (one lease token) for `lease_seconds`. A scheduled
    message whose time has come is released here: it shows Queued from this claim's COMMIT on."""
    claimed = await repository.claim(session=session, limit=limit, lease_seconds=lease_seconds)
    if claimed:
        await messages.release_scheduled(session=session, message_ids={c.message_id for c in claimed})
    return claimed


# --- scheduled sending: cancel and reschedule -------------------------------------------------------------


def _not_scheduled(message: Message) -> PostmarkError:
    return InvalidEmailRequest(
        f"Message {message.id} is not scheduled (its status is {message.status}): it has been released and can no longer "
        "be cancelled or rescheduled."
    )


async def _lock_scheduled(*, session: AsyncSession, message: Message) -> None:
    """Lock the message's queue rows (the order a claim takes: queue rows, then the message) and check that none
    has been released. A claim that holds some of them is waited for, so exactly one of the two wins."""
    if message.status != MessageStatus.SCHEDULED:
        raise _not_scheduled(message)
    rows = await repository.lock_rows(session=session, message_id=message.id)
    if not rows or any(r.status != RecipientStatus.QUEUED or r.attempts for r in rows):
        raise _not_scheduled(message)


async def cancel_scheduled(*, session: AsyncSession, message: Message) -> None:
    """A scheduled message that has not been released is cancelled: it never leaves. Raises (300) otherwise."""
    await _lock_scheduled(session=session, message=message)
    await messages.cancel_scheduled(session=session, message_id=message.id)


async def reschedule(*, session: AsyncSession, message: Message, send_at: datetime, now: datetime) -> None:
    """Move a scheduled message's release; a time already past releases it at the next claim."""
    await _lock_scheduled(session=session, message=message)
    await repository.move_due(session=session, message_id=message.id, at=max(send_at, now))
    await messages.set_send_at(session=session, message_id=message.id, send_at=send_at)


async def extend_leases(*, session: AsyncSession, items: list[Claimed], lease_seconds: float) -> int:
    """The heartbeat: push the lease of the rows a claim still holds (one token per claim)."""
    held = 0
    for token in {i.lease_token for i in items}:
        ids = [i.id for i in items if i.lease_token == token]
        held += await repository.extend_leases(session=session, ids=ids, token=token, lease_seconds=lease_seconds)
    return held


@dataclass(frozen=True, slots=True)
class Delivered:
    """A recipient the next hop accepted: its reply and the event's details."""

    item: Claimed
    response: str
    details: dict[str, Any]


async def record_delivered_many(*, session: AsyncSession, delivered: list[Delivered], at: datetime) -> list[Delivered]:
    """Mark many recipients delivered, with their Delivered events, in two statements; returns those
    recorded (the claim still held them: each row is fenced by its own lease token)."""
    held = await repository.finish_delivered(session=session, items=[(d.item, d.response) for d in delivered], at=at)
    recorded = [d for d in delivered if d.item.id in held]
    await messages.add_events(
        session=session, events=[(d.item.message_id, d.item.email, MessageEventType.DELIVERED, d.details) for d in recorded]
    )
    return recorded


async def record_deferred(*, session: AsyncSession, item: Claimed, response: str, until: datetime, details: dict[str, Any]) -> bool:
    """False (nothing recorded) when the claim lost the row to another worker."""
    if not await repository.defer_recipient(session=session, item=item, response=response, at=until):
        return False
    await messages.add_event(
        session=session, message_id=item.message_id, recipient=item.email, type_=MessageEventType.TRANSIENT, details=details
    )
    return True


async def release_bounced(*, session: AsyncSession, item: Claimed, response: str) -> bool:
    """Mark the recipient bounced; False (nothing written) when the claim lost the row. Its event
    follows with `record_bounced_event`, once the bounce it names exists."""
    return await repository.finish(session=session, item=item, status=RecipientStatus.BOUNCED, response=response)


async def record_bounced_event(*, session: AsyncSession, item: Claimed, details: dict[str, Any]) -> None:
    await messages.add_event(
        session=session, message_id=item.message_id, recipient=item.email, type_=MessageEventType.BOUNCED, details=details
    )
