"""Queue SQL: claiming with SKIP LOCKED and a lease, and loading what a delivery needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Uuid, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Domain, Message, MessageEvent, MessageRecipient, Server

CLAIM = text(
    """
    UPDATE message_recipients AS r
       SET status = 'sending', lease_until = now() + make_interval(secs => :lease), attempts = r.attempts + 1
     WHERE r.id IN (
           SELECT id FROM message_recipients
            WHERE (status IN ('queued', 'deferred') AND next_attempt_at <= now())
               OR (status = 'sending' AND lease_until < now())
            ORDER BY next_attempt_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.message_id, r.email, r.attempts
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    message_id: uuid.UUID
    email: str
    attempts: int


async def claim(*, session: AsyncSession, limit: int, lease_seconds: float) -> list[Claimed]:
    rows = (await session.execute(CLAIM, {"limit": limit, "lease": lease_seconds})).all()
    return [Claimed(id=r[0], message_id=r[1], email=r[2], attempts=r[3]) for r in rows]


async def load_messages(*, session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    rows = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars().all()
    return {m.id: m for m in rows}


async def load_servers(*, session: AsyncSession, ids: set[int]) -> dict[int, Server]:
    rows = (await session.execute(select(Server).where(Server.id.in_(ids)))).scalars().all()
    return {s.id: s for s in rows}


async def signing_keys(*, session: AsyncSession, names: set[str]) -> dict[str, tuple[str, str]]:
    """Domain → (selector, private key PEM) for the domains that have one."""
    if not names:
        return {}
    stmt = select(Domain.name, Domain.dkim_selector, Domain.dkim_private_key).where(Domain.name.in_(names), Domain.dkim_private_key != "")
    return {name: (selector, key) for name, selector, key in (await session.execute(stmt)).all()}


async def finish(*, session: AsyncSession, recipient_id: int, status: str, response: str, delivered_at: datetime | None = None) -> None:
    await session.execute(
        update(MessageRecipient)
        .where(MessageRecipient.id == recipient_id)
        .values(status=status, last_response=response[:2000], lease_until=None, delivered_at=delivered_at)
    )


async def defer(*, session: AsyncSession, recipient_id: int, response: str, at: datetime) -> None:
    await session.execute(
        update(MessageRecipient)
        .where(MessageRecipient.id == recipient_id)
        .values(status="deferred", last_response=response[:2000], lease_until=None, next_attempt_at=at)
    )


async def add_event(*, session: AsyncSession, message_id: uuid.UUID, recipient: str, type_: str, details: dict[str, Any]) -> None:
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
