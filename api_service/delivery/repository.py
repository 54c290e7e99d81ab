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
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ARRAY, BigInteger, ColumnElement, CursorResult, Text, Uuid, and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import DeliveryDestination, DeliveryDomain, DeliveryIpDay, DeliverySlot, MessageRecipient, RecipientStatus

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


# --- destinations: what the claim admits, the shared connection slots, the learned state ----------

# A recipient's domain, as the claim sees it: what follows the last "@" (a quoted local part may hold one).

# Due rows (and rows whose worker went silent) whose destination is not closed, oldest first but in
# turns: every destination's oldest row, then every destination's second, … so that one
# destination with a deep queue never fills a batch alone (no head-of-line blocking). No lock here:
# the admitted ones are locked with SKIP LOCKED afterwards, under their destination's lock.
CANDIDATES = text(
    """
    WITH due AS (
           SELECT r.id, lower(reverse(split_part(reverse(r.email), '@', 1))) AS domain, r.next_attempt_at AS at FROM message_recipients r
            WHERE r.status IN ('queued', 'deferred') AND r.next_attempt_at <= now()
           UNION ALL
           SELECT r.id, lower(reverse(split_part(reverse(r.email), '@', 1))), r.lease_until FROM message_recipients r
            WHERE r.status = 'sending' AND r.lease_until < now()),
         open_ AS (
           -- A mapping a day old is looked up again (NULL: the worker resolves the domain's MX).
           SELECT d.id, d.domain, d.at, CASE WHEN dd.resolved_at > now() - interval '1 day' THEN dd.destination END AS destination
             FROM due d LEFT JOIN delivery_domains dd ON dd.domain = d.domain
            WHERE dd.destination IS NULL OR NOT dd.destination = ANY(:closed)),
         ranked AS (
           SELECT id, domain, destination, at, row_number() OVER (PARTITION BY coalesce(destination, domain) ORDER BY at) AS turn
             FROM open_)
    SELECT id, domain, destination FROM ranked ORDER BY turn, at LIMIT :limit
    """
).bindparams(bindparam("closed", type_=ARRAY(Text)))


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    domain: str
    destination: str | None


async def candidates(*, session: AsyncSession, limit: int, closed: list[str]) -> list[Candidate]:
    rows = (await session.execute(CANDIDATES, {"limit": limit, "closed": closed})).all()
    return [Candidate(id=r[0], domain=r[1], destination=r[2]) for r in rows]


# Closed: suspended, out of rate, or every connection slot held by other workers (and none by this one).
CLOSED = text(
    """
    SELECT d.key FROM delivery_destinations d
     WHERE d.suspended_until > now() OR d.paused_until > now()
        OR ((SELECT count(*) FROM delivery_slots s WHERE s.destination = d.key AND s.lease_until > now()) >= d.connections
            AND NOT EXISTS (SELECT 1 FROM delivery_slots s WHERE s.destination = d.key AND s.holder = :holder AND s.lease_until > now()))
    """
)


async def closed_destinations(*, session: AsyncSession, holder: uuid.UUID) -> list[str]:
    return list((await session.execute(CLOSED, {"holder": holder})).scalars())


async def save_domains(*, session: AsyncSession, destinations: dict[str, str]) -> None:
    """Remember what each domain resolved to (the claim reads it)."""
    if not destinations:
        return
    statement = pg_insert(DeliveryDomain).values(
        [{"domain": d, "destination": k, "resolved_at": func.now()} for d, k in sorted(destinations.items())]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[DeliveryDomain.domain], set_={"destination": statement.excluded.destination, "resolved_at": func.now()}
        )
    )


async def lock_destinations(*, session: AsyncSession, connections: dict[str, int]) -> dict[str, DeliveryDestination]:
    """The destinations' rows, made when new (with their configured connections), locked in key
    order (so two workers never wait on each other in a cycle)."""
    if not connections:
        return {}
    await session.execute(
        pg_insert(DeliveryDestination)
        .values(
            [
                {
                    "key": k,
                    "connections": n,
                    "rate_factor": 1.0,
                    "successes": 0,
                    "throttles": 0,
                    "delivered": 0,
                    "throttled": 0,
                    "last_reply": "",
                    "updated_at": func.now(),
                }
                for k, n in sorted(connections.items())
            ]
        )
        .on_conflict_do_nothing(index_elements=[DeliveryDestination.key])
    )
    rows = await session.execute(
        select(DeliveryDestination)
        .where(DeliveryDestination.key.in_(sorted(connections)))
        .order_by(DeliveryDestination.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.key: row for row in rows.scalars()}


SLOT_COUNTS = text(
    """
    SELECT destination, count(*) FILTER (WHERE holder = :holder), count(*) FILTER (WHERE holder <> :holder)
      FROM delivery_slots WHERE destination = ANY(:keys) AND lease_until > now() GROUP BY destination
    """
).bindparams(bindparam("keys", type_=ARRAY(Text)))


async def slot_counts(*, session: AsyncSession, keys: list[str], holder: uuid.UUID) -> dict[str, tuple[int, int]]:
    """Per destination: live slots (mine, other workers')."""
    rows = (await session.execute(SLOT_COUNTS, {"keys": keys, "holder": holder})).all()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def add_slots(*, session: AsyncSession, slots: list[tuple[uuid.UUID, str, str]], holder: uuid.UUID, lease_seconds: float) -> None:
    """(slot id, destination, source IP) rows held by `holder`."""
    if slots:
        until = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds)
        await session.execute(
            pg_insert(DeliverySlot).values(
                [{"id": i, "destination": d, "holder": holder, "source_ip": ip, "lease_until": until} for i, d, ip in slots]
            )
        )


async def release_slots(*, session: AsyncSession, ids: list[uuid.UUID]) -> None:
    if ids:
        await session.execute(delete(DeliverySlot).where(DeliverySlot.id.in_(ids)))


async def keep_slots(*, session: AsyncSession, holder: uuid.UUID, keep: list[uuid.UUID], lease_seconds: float) -> None:
    """Extend the lease of the slots `holder` still uses; drop its others (a send cancelled midway)
    and every lapsed slot (a dead worker's)."""
    await session.execute(
        delete(DeliverySlot).where(
            or_(DeliverySlot.lease_until < func.now(), and_(DeliverySlot.holder == holder, DeliverySlot.id.not_in(keep)))
        )
    )
    if keep:
        await session.execute(
            update(DeliverySlot)
            .where(DeliverySlot.id.in_(keep))
            .values(lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds))
        )


async def extend_slots(*, session: AsyncSession, ids: list[uuid.UUID], lease_seconds: float) -> None:
    if ids:
        await session.execute(
            update(DeliverySlot)
            .where(DeliverySlot.id.in_(ids))
            .values(lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds))
        )


async def clock_us(*, session: AsyncSession) -> int:
    """The database's clock, in microseconds since the epoch (every worker's buckets use it)."""
    return int((await session.execute(text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"))).scalar_one())


CLAIM_IDS = text(
    """
    UPDATE message_recipients AS r
       SET status = 'sending', lease_until = now() + make_interval(secs => :lease), attempts = r.attempts + 1, lease_token = :token
     WHERE r.id IN (SELECT id FROM message_recipients
                     WHERE id = ANY(:ids)
                       AND ((status IN ('queued', 'deferred') AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until < now()))
                     ORDER BY array_position(:ids, id)
                     LIMIT :want
                       FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.message_id, r.email, r.attempts, r.lease_token
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def claim_ids(*, session: AsyncSession, ids: list[int], want: int, lease_seconds: float, token: uuid.UUID) -> list[Claimed]:
    """Hold the first `want` of these rows that are still due and not held by another claim meanwhile."""
    if not ids or want <= 0:
        return []
    rows = (await session.execute(CLAIM_IDS, {"ids": ids, "want": want, "lease": lease_seconds, "token": token})).all()
    return [Claimed(id=r[0], message_id=r[1], email=r[2], attempts=r[3], lease_token=r[4]) for r in rows]


REQUEUE = text(
    """
    UPDATE message_recipients AS r
       SET status = 'deferred', attempts = greatest(0, r.attempts - 1), next_attempt_at = :at, lease_until = NULL,
           lease_token = NULL, last_response = CASE WHEN u.response = '' THEN r.last_response ELSE left(u.response, 2000) END
      FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[]), CAST(:responses AS text[])) AS u(id, token, response)
     WHERE r.id = u.id AND r.lease_token = u.token AND r.status = 'sending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("tokens", type_=ARRAY(Uuid)), bindparam("responses", type_=ARRAY(Text)))


async def requeue(*, session: AsyncSession, items: list[tuple[Claimed, str]], at: datetime) -> None:
    """Back to the queue until `at` without spending an attempt: the destination pushed back, the
    recipient did nothing wrong."""
    if items:
        await session.execute(
            REQUEUE,
            {"ids": [i.id for i, _ in items], "tokens": [i.lease_token for i, _ in items], "responses": [r for _, r in items], "at": at},
        )


async def list_destinations(*, session: AsyncSession) -> list[tuple[DeliveryDestination, int, int]]:
    """Every destination with its live slots and the domains known to resolve to it."""
    slots = select(func.count()).where(DeliverySlot.destination == DeliveryDestination.key, DeliverySlot.lease_until > func.now())
    domains = select(func.count()).where(DeliveryDomain.destination == DeliveryDestination.key)
    rows = await session.execute(
        select(DeliveryDestination, slots.scalar_subquery(), domains.scalar_subquery()).order_by(DeliveryDestination.key)
    )
    return [(r[0], int(r[1]), int(r[2])) for r in rows.all()]


QUEUED_BY_DESTINATION = text(
    """
    SELECT coalesce(dd.destination, '') AS destination, count(*) FROM message_recipients r
      LEFT JOIN delivery_domains dd ON dd.domain = lower(reverse(split_part(reverse(r.email), '@', 1)))
     WHERE r.status IN ('queued', 'deferred') GROUP BY 1
    """
)


async def queued_by_destination(*, session: AsyncSession) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in (await session.execute(QUEUED_BY_DESTINATION)).all()}


async def save_admission(
    *, session: AsyncSession, key: str, connections: int, tats: tuple[int | None, int | None, int | None], paused_us: int
) -> None:
    """After an admission: the buckets, the connections in force, and a pause while the rates allow nothing."""
    paused = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, paused_us / 1_000_000) if paused_us > 0 else None
    await session.execute(
        update(DeliveryDestination)
        .where(DeliveryDestination.key == key)
        .values(
            connections=connections,
            tat_second_us=tats[0],
            tat_minute_us=tats[1],
            tat_hour_us=tats[2],
            paused_until=paused,
            updated_at=func.now(),
        )
    )


async def lock_destination(*, session: AsyncSession, key: str) -> DeliveryDestination | None:
    row = await session.execute(
        select(DeliveryDestination).where(DeliveryDestination.key == key).with_for_update().execution_options(populate_existing=True)
    )
    return row.scalar_one_or_none()


async def save_learning(
    *,
    session: AsyncSession,
    key: str,
    connections: int,
    rate_factor: float,
    successes: int,
    throttles: int,
    throttled_at: datetime | None,
    suspended_until: datetime | None,
    delivered: int,
    throttled: int,
    last_reply: str,
) -> None:
    await session.execute(
        update(DeliveryDestination)
        .where(DeliveryDestination.key == key)
        .values(
            connections=connections,
            rate_factor=rate_factor,
            successes=successes,
            throttles=throttles,
            throttled_at=throttled_at,
            suspended_until=suspended_until,
            delivered=DeliveryDestination.delivered + delivered,
            throttled=DeliveryDestination.throttled + throttled,
            last_reply=last_reply[:2000] if last_reply else DeliveryDestination.last_reply,
            updated_at=func.now(),
        )
    )


async def take_warmup(*, session: AsyncSession, source_ip: str, provider: str, day: date, want: int, allowance: int) -> int:
    """Count up to `want` more sends against the day's `allowance`; how many were granted."""
    await session.execute(
        pg_insert(DeliveryIpDay)
        .values(source_ip=source_ip, provider=provider, day=day, sent=0)
        .on_conflict_do_nothing(index_elements=[DeliveryIpDay.source_ip, DeliveryIpDay.provider, DeliveryIpDay.day])
    )
    key = (DeliveryIpDay.source_ip == source_ip, DeliveryIpDay.provider == provider, DeliveryIpDay.day == day)
    sent = (await session.execute(select(DeliveryIpDay.sent).where(*key).with_for_update())).scalar_one()
    granted = max(0, min(want, allowance - sent))
    if granted:
        await session.execute(update(DeliveryIpDay).where(*key).values(sent=DeliveryIpDay.sent + granted))
    return granted


async def give_back_warmup(*, session: AsyncSession, source_ip: str, provider: str, day: date, count: int) -> None:
    await session.execute(
        update(DeliveryIpDay)
        .where(DeliveryIpDay.source_ip == source_ip, DeliveryIpDay.provider == provider, DeliveryIpDay.day == day)
        .values(sent=func.greatest(0, DeliveryIpDay.sent - count))
    )


async def warmup_counts(*, session: AsyncSession, day: date) -> list[tuple[str, str, int]]:
    rows = await session.execute(
        select(DeliveryIpDay.source_ip, DeliveryIpDay.provider, DeliveryIpDay.sent)
        .where(DeliveryIpDay.day == day)
        .order_by(DeliveryIpDay.source_ip, DeliveryIpDay.provider)
    )
    return [(r[0], r[1], int(r[2])) for r in rows.all()]


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
