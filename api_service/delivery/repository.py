"""The delivery queue: the queue columns of `message_recipients` (status, attempts, lease, next
attempt, last response, delivered at).

`messages/` inserts a message's recipient rows when it accepts the message (they are part of the
message log, and it deletes them with their message); from then on this package is the only
writer of their queue columns: it claims due rows with a lease, extends the lease while a send is
in flight, and records each attempt's outcome, every update fenced by the claim's lease token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, BigInteger, ColumnElement, CursorResult, Text, Uuid, and_, bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import MessageRecipient, RecipientStatus

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


def _held(item: Claimed) -> ColumnElement[bool]:
    return and_(
        MessageRecipient.id == item.id,
        MessageRecipient.lease_token == item.lease_token,
        MessageRecipient.status == RecipientStatus.SENDING.value,
    )


async def finish(
    *, session: AsyncSession, item: Claimed, status: RecipientStatus, response: str, delivered_at: datetime | None = None
) -> bool:
    """Record a final status; False (and nothing written) when this claim no longer holds the row."""
    result = await session.execute(
        update(MessageRecipient)
        .where(_held(item))
        .values(status=status.value, last_response=response[:2000], lease_until=None, lease_token=None, delivered_at=delivered_at)
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


async def defer_recipient(*, session: AsyncSession, item: Claimed, response: str, at: datetime) -> bool:
    """Back to the queue until `at`; False (and nothing written) when this claim no longer holds the row."""
    result = await session.execute(
        update(MessageRecipient)
        .where(_held(item))
        .values(
            status=RecipientStatus.DEFERRED.value, last_response=response[:2000], lease_until=None, lease_token=None, next_attempt_at=at
        )
    )
    return bool(cast(CursorResult[Any], result).rowcount)


# --- scheduled sending ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Waiting:
    status: str
    attempts: int


LOCK_ROWS = text("SELECT status, attempts FROM message_recipients WHERE message_id = :message_id ORDER BY id FOR UPDATE")


async def lock_rows(*, session: AsyncSession, message_id: uuid.UUID) -> list[Waiting]:
    """A message's queue rows, locked until the transaction ends. Taken while a claim holds some of them, this
    waits for the claim's COMMIT and then reads what it wrote (`sending`): a cancel racing a release sees it."""
    rows = (await session.execute(LOCK_ROWS, {"message_id": message_id})).all()
    return [Waiting(status=r[0], attempts=r[1]) for r in rows]


async def move_due(*, session: AsyncSession, message_id: uuid.UUID, at: datetime) -> None:
    """Rows not yet released become due at `at` (the caller holds their locks)."""
    await session.execute(
        update(MessageRecipient)
        .where(MessageRecipient.message_id == message_id, MessageRecipient.status == RecipientStatus.QUEUED.value)
        .values(next_attempt_at=at)
    )
