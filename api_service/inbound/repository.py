"""All SQL of inbound mail: received messages, inbound rules, and finding the server an inbound
address belongs to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from api_service.core.listing import page_of
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


def _clauses(f: InboundFilter) -> list[ColumnElement[bool] | None]:
    """One clause per search parameter; None where the parameter was not given (or empty)."""
    return [
        func.array_to_string(InboundMessage.recipients, ",").icontains(f.recipient, autoescape=True) if f.recipient else None,
        InboundMessage.from_email.icontains(f.from_email, autoescape=True) if f.from_email else None,
        InboundMessage.tag == f.tag if f.tag else None,
        InboundMessage.status == f.status.value if f.status else None,
        InboundMessage.subject.icontains(f.subject, autoescape=True) if f.subject else None,
        InboundMessage.mailbox_hash == f.mailbox_hash if f.mailbox_hash else None,
        InboundMessage.created_at >= f.from_date if f.from_date else None,
        InboundMessage.created_at < f.to_date if f.to_date else None,
    ]


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: InboundFilter, count: int, offset: int
) -> tuple[int, list[InboundMessage]]:
    """A page of received messages, newest first (their raw MIME is not loaded)."""
    return await page_of(
        session=session,
        stmt=select(InboundMessage).where(InboundMessage.server_id == server_id),
        filters=_clauses(filters),
        order_by=[InboundMessage.created_at.desc(), InboundMessage.id],
        count=count,
        offset=offset,
        options=[defer(InboundMessage.raw_mime)],
    )


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
    return await page_of(session=session, stmt=stmt, order_by=[InboundRule.id], count=count, offset=offset)


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
