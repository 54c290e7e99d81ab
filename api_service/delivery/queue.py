"""The delivery queue's service: claim due recipients, hold them with a lease, and record what
became of each attempt (delivered, deferred, bounced).

Every write is fenced by the claim's lease token (see `repository.Claimed`): a worker whose lease
ran out and was taken over records nothing. The events of an outcome belong to the message log
and are added through `messages`; a batch of deliveries stays two statements (the queue rows,
then their events), as before the queue had a package of its own.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.delivery import repository, shaping
from api_service.delivery.policy import Limits, Policy
from api_service.delivery.repository import Candidate, Claimed
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.messages import service as messages
from api_service.models import DeliveryDestination, Message, RecipientStatus
from shared.constants import MessageEventType, MessageStatus

__all__ = ["Candidate", "Claimed", "Delivered"]


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


# --- shaped claims: only what each destination has room for ------------------------------------


async def open_candidates(*, session: AsyncSession, limit: int, holder: uuid.UUID) -> list[Candidate]:
    """Due recipients whose destination is neither suspended, nor out of rate, nor full (every
    connection slot held by another worker): what a claim may take, destinations taking turns."""
    closed = await repository.closed_destinations(session=session, holder=holder)
    return await repository.candidates(session=session, limit=limit, closed=closed)


@dataclass(slots=True)
class Admitted:
    """A destination's share of a claim: the recipients to send, the limits they go under, the
    connections to use (`reuse` of this worker's idle ones, then `new_slots` to open) and how many
    idle ones to close (the destination now allows fewer)."""

    destination: str
    limits: Limits
    items: list[Claimed] = field(default_factory=list)
    reuse: int = 0
    new_slots: list[uuid.UUID] = field(default_factory=list)
    close: int = 0


async def admit(
    *,
    session: AsyncSession,
    wanted: dict[str, list[int]],
    quotas: dict[str, int],
    policy: Policy,
    holder: uuid.UUID,
    idle: dict[str, int],
    lease_seconds: float,
    slot_lease_seconds: float,
    max_lanes: int,
) -> list[Admitted]:
    """Per destination (locked, so that workers admit one at a time): take rate tokens and
    connection slots for as many of its `wanted` recipients as they allow, at most its quota of
    the batch, and hold those (the first of them that no other claim took meanwhile)."""
    configured = {key: policy.limits(key) for key in wanted}
    rows = await repository.lock_destinations(session=session, connections={k: v.connections for k, v in configured.items()})
    counts = await repository.slot_counts(session=session, keys=sorted(wanted), holder=holder)
    now_us = await repository.clock_us(session=session)
    token = uuid.uuid4()
    admitted: list[Admitted] = []
    for key in sorted(wanted):
        row, limits = rows[key], configured[key]
        learned = shaping.clamp(shaping.Learned(connections=row.connections, rate_factor=row.rate_factor), limits, policy.learning)
        mine, others = counts.get(key, (0, 0))
        room = max(0, learned.connections - others)
        reusable = min(idle.get(key, 0), room)
        capacity = min(max_lanes, reusable + max(0, learned.connections - others - mine))
        want = min(quotas.get(key, 0), capacity * limits.messages_per_connection)
        buckets = shaping.Buckets(second=row.tat_second_us, minute=row.tat_minute_us, hour=row.tat_hour_us)
        taken = shaping.admit(want=want, limits=limits, factor=learned.rate_factor, buckets=buckets, now_us=now_us)
        items = await repository.claim_ids(session=session, ids=wanted[key], want=taken.granted, lease_seconds=lease_seconds, token=token)
        use = min(len(items), capacity)
        reuse = min(use, reusable)
        entry = Admitted(
            destination=key,
            limits=limits,
            items=items,
            reuse=reuse,
            new_slots=[uuid.uuid4() for _ in range(use - reuse)],
            close=max(0, min(mine - room, idle.get(key, 0) - reuse)),
        )
        await repository.add_slots(
            session=session, slots=[(s, key, "") for s in entry.new_slots], holder=holder, lease_seconds=slot_lease_seconds
        )
        await repository.save_admission(
            session=session,
            key=key,
            connections=learned.connections,
            tats=(taken.buckets.second, taken.buckets.minute, taken.buckets.hour),
            paused_us=taken.wait_us if want and not taken.granted else 0,
        )
        admitted.append(entry)
    # A scheduled message whose time has come is released here: it shows Queued from this claim's COMMIT on.
    released = {c.message_id for entry in admitted for c in entry.items}
    if released:
        await messages.release_scheduled(session=session, message_ids=released)
    return admitted


def by_destination(
    candidates: list[Candidate], destination_of: dict[str, str], *, limit: int
) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Candidate ids per destination key, in the claim's order; and each destination's share of a
    batch of `limit` (the first `limit` candidates: destinations take turns)."""
    wanted: dict[str, list[int]] = defaultdict(list)
    quotas: dict[str, int] = defaultdict(int)
    for n, c in enumerate(candidates):
        key = c.destination or destination_of[c.domain]
        wanted[key].append(c.id)
        if n < limit:
            quotas[key] += 1
    return dict(wanted), dict(quotas)


async def save_domains(*, session: AsyncSession, destinations: dict[str, str]) -> None:
    await repository.save_domains(session=session, destinations=destinations)


async def release_slots(*, session: AsyncSession, ids: list[uuid.UUID]) -> None:
    await repository.release_slots(session=session, ids=ids)


async def keep_slots(*, session: AsyncSession, holder: uuid.UUID, keep: list[uuid.UUID], lease_seconds: float) -> None:
    await repository.keep_slots(session=session, holder=holder, keep=keep, lease_seconds=lease_seconds)


async def extend_slots(*, session: AsyncSession, ids: list[uuid.UUID], lease_seconds: float) -> None:
    await repository.extend_slots(session=session, ids=ids, lease_seconds=lease_seconds)


async def requeue(*, session: AsyncSession, items: list[tuple[Claimed, str]], at: datetime) -> None:
    await repository.requeue(session=session, items=items, at=at)


@dataclass(slots=True)
class Feedback:
    """What one batch of sends taught about a destination."""

    delivered: int = 0
    throttled: set[shaping.Throttle] = field(default_factory=set)
    throttle_replies: int = 0
    hint: float | None = None
    last_reply: str = ""


async def learn(*, session: AsyncSession, key: str, feedback: Feedback, policy: Policy, now: datetime) -> datetime | None:
    """Apply a batch's feedback to the destination's live limits; until when it is suspended."""
    row = await repository.lock_destination(session=session, key=key)
    if row is None:
        return None
    state = shaping.Learned(
        connections=row.connections,
        rate_factor=row.rate_factor,
        successes=row.successes,
        throttles=row.throttles,
        throttled_at=row.throttled_at,
        suspended_until=row.suspended_until,
    )
    new = shaping.after_batch(
        state,
        delivered=feedback.delivered,
        throttled=feedback.throttled,
        hint=feedback.hint,
        limits=policy.limits(key),
        learning=policy.learning,
        now=now,
    )
    await repository.save_learning(
        session=session,
        key=key,
        connections=new.connections,
        rate_factor=new.rate_factor,
        successes=new.successes,
        throttles=new.throttles,
        throttled_at=new.throttled_at,
        suspended_until=new.suspended_until,
        delivered=feedback.delivered,
        throttled=feedback.throttle_replies,
        last_reply=feedback.last_reply,
    )
    return new.suspended_until


async def list_destinations(*, session: AsyncSession) -> list[tuple[DeliveryDestination, int, int]]:
    return await repository.list_destinations(session=session)


async def queued_by_destination(*, session: AsyncSession) -> dict[str, int]:
    return await repository.queued_by_destination(session=session)


async def take_warmup(*, session: AsyncSession, source_ip: str, provider: str, day: date, want: int, allowance: int) -> int:
    """Up to `want` messages of a source IP's warm-up allowance for a provider today, shared by every worker."""
    return await repository.take_warmup(session=session, source_ip=source_ip, provider=provider, day=day, want=want, allowance=allowance)


async def give_back_warmup(*, session: AsyncSession, source_ip: str, provider: str, day: date, count: int) -> None:
    await repository.give_back_warmup(session=session, source_ip=source_ip, provider=provider, day=day, count=count)


async def warmup_counts(*, session: AsyncSession, day: date) -> list[tuple[str, str, int]]:
    return await repository.warmup_counts(session=session, day=day)
