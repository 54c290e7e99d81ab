"""What a delivery attempt means, recorded: each recipient delivered, retried later or bounced,
with its message's events and webhooks; the outcomes of the sends that end together are written
in one group commit (`Recorder`)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.bounces import service as bounces
from api_service.bounces.classify import Outcome, Verdict, classify
from api_service.config import Settings
from api_service.core import observe
from api_service.core.groupcommit import GroupCommit
from api_service.delivery import queue
from api_service.delivery.queue import Claimed
from api_service.delivery.transport import Attempt, Reply
from api_service.messages import service as messages
from api_service.models import Message, Server
from api_service.webhooks import service as webhooks
from api_service.webhooks.payloads import delivery_payload
from shared.constants import BounceType, WebhookTrigger

log = logging.getLogger("postgate.delivery")


def retry_delay(*, attempts: int, first: float) -> float:
    """Doubling from `first`, with ±10 % jitter so retries of a burst spread out."""
    return float(first * 2 ** max(0, attempts - 1) * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security


class Recorder:
    """Group commit of a batch's outcomes: the groups whose SMTP transactions end while a commit
    runs are recorded together in the next one (a statement per kind of write, not per recipient,
    and one synchronous commit). Each send still waits for its own commit, so it counts as in flight
    until then and what a kill -9 sends twice stays bounded by the concurrency."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.hooks = HookCache()

        async def together(session: AsyncSession, outcomes: list[Outcomes]) -> list[None]:
            await record_attempts(session=session, outcomes=[(o, o.items) for o in outcomes], settings=settings, hooks=self.hooks)
            await messages.settle(session=session, message_ids={o.message.id for o in outcomes})
            return [None] * len(outcomes)

        self.commits: GroupCommit[Outcomes, None] = GroupCommit(sessionmaker=sessionmaker, write=together, what="delivery outcomes")

    async def write(self, outcome: Outcomes) -> None:
        try:
            await self.commits.submit(outcome)
        except Exception:
            # Its own savepoint failed, or the group's COMMIT did: the mail has left, so it is
            # recorded on its own (recipient by recipient, retried for up to a lease).
            await record(sessionmaker=self.sessionmaker, outcome=outcome, settings=self.settings, hooks=self.hooks)

    async def close(self) -> None:
        await self.commits.close()


def recorder(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Recorder:
    return Recorder(sessionmaker=sessionmaker, settings=settings)


async def record(*, sessionmaker: async_sessionmaker[AsyncSession], outcome: Outcomes, settings: Settings, hooks: HookCache) -> None:
    """Record a group's outcome in one transaction; should that fail, each recipient alone.

    What cannot be recorded is tried again (a database restart) for up to a lease: the mail has
    left, and giving up means sending it again once the lease expires.
    """
    pending = outcome.items
    deadline = time.monotonic() + settings.delivery_lease_seconds
    delay = 0.2
    while True:
        failed: list[Claimed] = []
        try:
            async with sessionmaker() as session, session.begin():
                await record_attempt(session=session, outcome=outcome, items=pending, settings=settings, hooks=hooks)
                await messages.settle(session=session, message_ids={outcome.message.id})
        except Exception:
            if len(pending) == 1:
                failed = pending
            else:  # one recipient that cannot be recorded must not hold back the others
                for item in pending:
                    try:
                        async with sessionmaker() as session, session.begin():
                            await record_attempt(session=session, outcome=outcome, items=[item], settings=settings, hooks=hooks)
                            await messages.settle(session=session, message_ids={outcome.message.id})
                    except Exception:
                        failed.append(item)
        if not failed:
            return
        if time.monotonic() + delay > deadline:
            log.exception("recording the delivery of %s failed; it is sent again when its lease expires", outcome.message.id)
            return
        log.warning("recording the delivery of %s failed; retrying in %.1f s", outcome.message.id, delay)
        await asyncio.sleep(delay)
        pending, delay = failed, min(delay * 2, 5.0)


@dataclass(slots=True)
class Outcomes:
    message: Message
    server: Server
    items: list[Claimed]
    attempt: Attempt


class HookCache(dict[tuple[int, str], bool]):
    """Within one batch: does a server's stream have any webhook at all? (Most have none.)"""


async def record_attempt(*, session: AsyncSession, outcome: Outcomes, items: list[Claimed], settings: Settings, hooks: HookCache) -> None:
    await record_attempts(session=session, outcomes=[(outcome, items)], settings=settings, hooks=hooks)


async def record_attempts(
    *, session: AsyncSession, outcomes: list[tuple[Outcomes, list[Claimed]]], settings: Settings, hooks: HookCache
) -> None:
    """What each recipient's reply means: delivered, retried later, or bounced. A recipient whose
    lease this worker lost is left to the worker that holds it now (fencing). Deliveries, the
    common case, are written with one statement for all of them."""
    now = datetime.now(UTC)
    delivered: list[queue.Delivered] = []
    outcome_of: dict[int, Outcomes] = {}
    for outcome, items in outcomes:
        message, server, attempt = outcome.message, outcome.server, outcome.attempt
        for item in items:
            reply = attempt.replies.get(item.email, Reply(451, "4.3.0 No reply for this recipient"))
            text = f"{reply.code} {reply.message}".strip()
            details = {"DeliveryMessage": text, "DestinationServer": attempt.server, "DestinationIP": attempt.ip}
            if attempt.tls is not None:  # direct delivery: the TLS version, and whether the certificate was checked
                details.update(attempt.tls.details())
            verdict = classify(reply.code, reply.message)
            observe.delivery_attempt(
                message_id=message.id, server_id=server.id, recipient=item.email, code=reply.code, outcome=verdict.outcome.value
            )
            if verdict.outcome is Outcome.DELIVERED:
                delivered.append(queue.Delivered(item=item, response=text, details=details))
                outcome_of[item.id] = outcome
                continue
            await _not_delivered(
                session=session, outcome=outcome, item=item, text=text, details=details, verdict=verdict, settings=settings, now=now
            )
    if not delivered:
        return
    recorded = await queue.record_delivered_many(session=session, delivered=delivered, at=now)
    for lost in {d.item.id for d in delivered} - {d.item.id for d in recorded}:
        log.warning("lease of %s to %s was lost before its delivery was recorded", outcome_of[lost].message.id, _email(delivered, lost))
    for entry in recorded:
        outcome = outcome_of[entry.item.id]
        message, server = outcome.message, outcome.server
        key = (server.id, message.message_stream)
        if key not in hooks:
            hooks[key] = bool(server.delivery_hook_url) or await webhooks.has_webhooks(
                session=session, server_id=server.id, stream=message.message_stream
            )
        if hooks[key]:
            payload = delivery_payload(
                server_id=server.id,
                stream=message.message_stream,
                message_id=str(message.id),
                recipient=entry.item.email,
                tag=message.tag,
                delivered_at=now,
                details=entry.response,
                metadata=message.metadata_,
            )
            await webhooks.event_recorded(
                session=session, server=server, stream=message.message_stream, trigger=WebhookTrigger.DELIVERY, payload=payload
            )


def _email(delivered: list[queue.Delivered], item_id: int) -> str:
    return next(d.item.email for d in delivered if d.item.id == item_id)


async def _not_delivered(
    *,
    session: AsyncSession,
    outcome: Outcomes,
    item: Claimed,
    text: str,
    details: dict[str, str],
    verdict: Verdict,
    settings: Settings,
    now: datetime,
) -> None:
    """A temporary failure is retried later, until the horizon; then, or for a permanent one, a bounce."""
    message = outcome.message
    bounce_type = verdict.bounce_type
    if verdict.outcome is Outcome.RETRY:
        delay = retry_delay(attempts=item.attempts, first=settings.delivery_retry_first_seconds)
        # A scheduled message's retries count from its release, not from when it was accepted.
        started = max(message.created_at, message.send_at) if message.send_at is not None else message.created_at
        if now + timedelta(seconds=delay) <= started + timedelta(seconds=settings.delivery_retry_horizon_seconds):
            await queue.record_deferred(session=session, item=item, response=text, until=now + timedelta(seconds=delay), details=details)
            return
        bounce_type = BounceType.SOFT_BOUNCE
    if not await queue.release_bounced(session=session, item=item, response=text):
        log.warning("lease of %s to %s was lost before its bounce was recorded", message.id, item.email)
        return
    bounce = await bounces.record_message_bounce(
        session=session, message=message, bounce_type=bounce_type or BounceType.UNKNOWN, email=item.email, details=text
    )
    await queue.record_bounced_event(session=session, item=item, details={"Summary": text, "BounceID": str(bounce.id), **details})
