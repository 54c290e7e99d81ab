"""All SQL of inbound mail: received messages, inbound rules, and finding the server an inbound
address belongs to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.models import InboundMessage, InboundRule, Server
from shared.constants import InboundStatus

# --- which server receives an address -------------------------------------------------------------


async def server_by_inbound_hash(*, session: AsyncSession, inbound_hash: str) -> Server | None:
    stmt = select(Server).where(func.lower(Server.inbound_hash) == inbound_hash.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def server_by_inbound_domain(*, session: AsyncSession, domain: str) -> Server | None:
    """The server whose InboundDomain this is (the oldest, should two claim it)."""
    stmt = select(Server).where(Server.inbound_domain == domain.lower()).order_by(Server.id).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


# --- received messages ------------------------------------------------------------------------------


@dataclass(slots=True)
class InboundFilter:
    recipient: str | None = None
    from_email: str | None = None
    tag: str | None = None
    status: InboundStatus | None = None
    subject: str | None = None
    mailbox_hash: str | None = None
    from_date: datetime | None = None
    to_date: datetime | None = None


async def add_message(*, session: AsyncSession, message: InboundMessage) -> InboundMessage:
    session.add(message)
    await session.flush()
    return message


async def get_message(*, session: AsyncSession, message_id: uuid.UUID, server_id: int | None = None) -> InboundMessage | None:
    stmt = select(InboundMessage).where(InboundMessage.id == message_id)
    if server_id is not None:
        stmt = stmt.where(InboundMessage.server_id == server_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: InboundFilter, count: int, offset: int
) -> tuple[int, list[InboundMessage]]:
    """A page of received messages, newest first (their raw MIME is not loaded)."""
    stmt = select(InboundMessage).where(InboundMessage.server_id == server_id)
    if filters.recipient:
        stmt = stmt.where(func.array_to_string(InboundMessage.recipients, ",").icontains(filters.recipient, autoescape=True))
    if filters.from_email:
        stmt = stmt.where(InboundMessage.from_email.icontains(filters.from_email, autoescape=True))
    if filters.tag:
        stmt = stmt.where(InboundMessage.tag == filters.tag)
    if filters.status:
        stmt = stmt.where(InboundMessage.status == filters.status)
    if filters.subject:
        stmt = stmt.where(InboundMessage.subject.icontains(filters.subject, autoescape=True))
    if filters.mailbox_hash:
        stmt = stmt.where(InboundMessage.mailbox_hash == filters.mailbox_hash)
    if filters.from_date:
        stmt = stmt.where(InboundMessage.created_at >= filters.from_date)
    if filters.to_date:
        stmt = stmt.where(InboundMessage.created_at < filters.to_date)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    page = (
        stmt.options(defer(InboundMessage.raw_mime))
        .order_by(InboundMessage.created_at.desc(), InboundMessage.id)
        .limit(count)
        .offset(offset)
    )
    return total, list((await session.execute(page)).scalars().all())


async def change_status(*, session: AsyncSession, message_id: uuid.UUID, from_statuses: set[InboundStatus], to: InboundStatus) -> bool:
    """Move a message to `to` if it is in one of `from_statuses`; False when it was not (so two
    concurrent requests cannot both bypass or retry it)."""
    stmt = (
        update(InboundMessage)
        .where(InboundMessage.id == message_id, InboundMessage.status.in_(list(from_statuses)))
        .values(status=to)
        .returning(InboundMessage.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


# --- inbound rules ------------------------------------------------------------------------------------


async def rule_texts(*, session: AsyncSession, server_id: int) -> list[str]:
    stmt = select(InboundRule.rule).where(InboundRule.server_id == server_id).order_by(InboundRule.id)
    return list((await session.execute(stmt)).scalars().all())


async def list_rules(*, session: AsyncSession, server_id: int, count: int, offset: int) -> tuple[int, list[InboundRule]]:
    stmt = select(InboundRule).where(InboundRule.server_id == server_id)
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = (await session.execute(stmt.order_by(InboundRule.id).limit(count).offset(offset))).scalars().all()
    return total, list(rows)


async def get_rule(*, session: AsyncSession, server_id: int, rule_id: int) -> InboundRule | None:
    stmt = select(InboundRule).where(InboundRule.server_id == server_id, InboundRule.id == rule_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_rule_by_text(*, session: AsyncSession, server_id: int, rule: str) -> InboundRule | None:
    stmt = select(InboundRule).where(InboundRule.server_id == server_id, InboundRule.rule == rule)
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_rule(*, session: AsyncSession, server_id: int, rule: str) -> InboundRule | None:
    """The new rule; None when the server has it already (also when a concurrent request added it)."""
    stmt = (
        insert(InboundRule)
        .values(server_id=server_id, rule=rule)
        .on_conflict_do_nothing(constraint="uq_inbound_rules_server_id_rule")
        .returning(InboundRule)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_rule(*, session: AsyncSession, rule: InboundRule) -> None:
    await session.delete(rule)
    await session.flush()


# --- data removal ---------------------------------------------------------------------------------

DELETE_ABOUT = text(
    """
    DELETE FROM inbound_messages WHERE id IN (
      SELECT id FROM inbound_messages
       WHERE lower(from_email) = :email OR lower(envelope_from) = :email OR lower(original_recipient) = :email
          OR EXISTS (SELECT 1 FROM unnest(recipients) AS r WHERE lower(r) = :email)
       LIMIT :limit
    )
    """
)


async def delete_messages_about(*, session: AsyncSession, email: str, limit: int) -> int:
    """Delete up to `limit` inbound messages from or to `email` (lower case); their raw MIME goes with the row.
    A sequential scan: removals are rare, and an index on every address column would cost each arrival."""
    result = await session.execute(DELETE_ABOUT, {"email": email, "limit": limit})
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- retention -----------------------------------------------------------------------------------

# Messages whose hook is still to be POSTed (Queued, Scheduled) stay until it is done or given up.
DELETE_EXPIRED = text(
    """
    DELETE FROM inbound_messages WHERE id IN (
        SELECT id FROM inbound_messages
         WHERE server_id = :server_id AND created_at < now() - make_interval(days => :days)
           AND status NOT IN (:queued, :scheduled)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


async def delete_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's inbound messages older than `days`, their raw MIME with them."""
    params = {
        "server_id": server_id,
        "days": days,
        "limit": limit,
        "queued": InboundStatus.QUEUED.value,
        "scheduled": InboundStatus.SCHEDULED.value,
    }
    result = await session.execute(DELETE_EXPIRED, params)
    return int(result.rowcount)  # type: ignore[attr-defined]
