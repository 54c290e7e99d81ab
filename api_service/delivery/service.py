"""Delivery: claim due recipients, send them, and record what each SMTP reply means for the
recipient, its message and its webhooks (the queue through `delivery.queue`, the rest through the
packages that own those records)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.bounces import service as bounces
from api_service.bounces.classify import Outcome, Verdict, classify
from api_service.bounces.verp import return_path
from api_service.config import Settings
from api_service.core import observe
from api_service.core.groupcommit import GroupCommit
from api_service.core.offload import cpu_bound
from api_service.delivery import queue
from api_service.delivery.queue import Claimed
from api_service.delivery.transport import Attempt, Reply, Transport
from api_service.domains import dkim
from api_service.domains import service as domains
from api_service.mail.addresses import domain_of
from api_service.messages import service as messages
from api_service.models import Message, Server
from api_service.servers import service as servers_service
from api_service.tracking.personalise import Personalisation, per_recipient, personalise
from api_service.webhooks import service as webhooks
from api_service.webhooks.payloads import delivery_payload
from shared.constants import BounceType, DeliveryType, WebhookTrigger

log = logging.getLogger("postgate.delivery")
SANDBOX_REPLY = Reply(250, "Sandboxed: accepted, not delivered")


def retry_delay(*, attempts: int, first: float) -> float:
    """Doubling from `first`, with ±10 % jitter so retries of a burst spread out."""
    return float(first * 2 ** max(0, attempts - 1) * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security


async def deliver_batch(*, sessionmaker: async_sessionmaker[AsyncSession], transport: Transport, settings: Settings) -> int:
    """Claim due recipients and deliver them, a recipient group (one message, one domain) per SMTP
    transaction; returns how many were claimed.

    Each group's outcome is recorded as soon as its SMTP transaction ends, in a short transaction
    shared with the groups that ended meanwhile (group commit, see `recorder`), and the claim's leases are extended while sends are in flight, so a worker that dies
    leaves for the next one only what it had not finished: a kill -9 sends again at most the
    groups in flight at that instant, and a relay slower than the lease is not sent to twice.
    """
    async with sessionmaker() as session, session.begin():
        claimed = await queue.claim_due(session=session, limit=settings.delivery_batch_size, lease_seconds=settings.delivery_lease_seconds)
    if not claimed:
        return 0
    async with heartbeat(sessionmaker=sessionmaker, items=claimed, lease_seconds=settings.delivery_lease_seconds):
        async with sessionmaker() as session:
            loaded = await messages.get_messages(session=session, ids={c.message_id for c in claimed})
            servers = await servers_service.get_servers(session=session, ids={m.server_id for m in loaded.values()})
            keys = await domains.signing_keys(session=session, domains={domain_of(m.from_email) for m in loaded.values()})
        # One recipient per SMTP transaction: the return path is signed for its recipient (bounces.verp),
        # so a DSN counts only for the recipient it was sent about. A message whose copies do not
        # differ per recipient is still signed once: that copy serves each of its groups and is dropped
        # with the last of them; a personalised copy is made for its one send and released once sent,
        # so a batch holds at most one per send in flight, not one per recipient.
        groups: dict[tuple[uuid.UUID, str, str], list[Claimed]] = defaultdict(list)
        for item in claimed:
            groups[(item.message_id, domain_of(item.email), item.email)].append(item)
        shared: dict[uuid.UUID, bytes] = {}
        sharers = Counter(mid for (mid, _, _) in groups if (m := loaded.get(mid)) is not None and not per_recipient(m))
        limit = asyncio.Semaphore(settings.delivery_concurrency)
        outcomes = recorder(sessionmaker=sessionmaker, settings=settings)

        async def copy_for(message: Message, server: Server, alone: str, recipient: str) -> bytes:
            data = None if alone else shared.get(message.id)
            if data is None:
                context = Personalisation(
                    secret=server.tracking_secret, base_url=settings.tracking_url, return_path_domain=settings.return_path_domain
                )
                # Off the loop for a big message: DKIM over 10 MB takes a third of a second.
                data = await cpu_bound(len(message.raw_mime), prepare, message, recipient, keys, context)
                if not alone:
                    shared[message.id] = data
            return data

        async def one(message_id: uuid.UUID, domain: str, recipient: str, items: list[Claimed]) -> None:
            message = loaded.get(message_id)
            if message is None:  # deleted with its server meanwhile (its rows went with it)
                return
            server = servers[message.server_id]
            alone = recipient if per_recipient(message) else ""
            async with limit:
                try:
                    if message.sandboxed or server.delivery_type == DeliveryType.SANDBOX:
                        attempt = Attempt(replies={i.email: SANDBOX_REPLY for i in items}, server="sandbox")
                    else:
                        attempt = await transport.send(
                            sender=return_path(
                                message_id=message_id, recipient=recipient, domain=settings.return_path_domain, secret=settings.verp_key
                            ),
                            domain=domain,
                            recipients=[i.email for i in items],
                            data=await copy_for(message, server, alone, items[0].email),
                        )
                finally:
                    if not alone:
                        sharers[message_id] -= 1
                        if sharers[message_id] <= 0:
                            shared.pop(message_id, None)
                # Still inside the limit: a group counts as in flight until its outcome is
                # recorded, which is what bounds the mail sent twice after a crash.
                await outcomes.write(Outcomes(message=message, server=server, items=items, attempt=attempt))

        try:
            await asyncio.gather(*(one(mid, domain, recipient, items) for (mid, domain, recipient), items in groups.items()))
        finally:
            await outcomes.close()
    return len(claimed)


@asynccontextmanager
async def heartbeat(*, sessionmaker: async_sessionmaker[AsyncSession], items: list[Claimed], lease_seconds: float) -> AsyncIterator[None]:
    """While the block runs, extend the lease of the claimed rows not yet recorded, every third of
    the lease, so that no other worker takes over a send that is still in flight."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                async with sessionmaker() as session, session.begin():
                    await queue.extend_leases(session=session, items=items, lease_seconds=lease_seconds)
            except Exception as exc:  # the database is away: the leases may lapse, fencing keeps that safe
                log.warning("extending delivery leases failed: %s: %s", type(exc).__name__, exc)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


def prepare(message: Message, recipient: str, keys: dict[str, domains.SigningKey], context: Personalisation) -> bytes:
    """The bytes to send to `recipient`: personalised (when its copy differs), then DKIM-signed."""
    return sign(personalise(message.raw_mime, message=message, recipient=recipient, context=context), message, keys)


def sign(mime: bytes, message: Message, keys: dict[str, domains.SigningKey]) -> bytes:
    key = keys.get(domain_of(message.from_email))
    if key is None:
        return mime
    try:
        return dkim.sign(mime, domain=key.domain, selector=key.selector, private_pem=key.private_pem)
    except Exception:  # a message dkimpy cannot sign is still delivered, unsigned
        log.exception("DKIM signing failed for %s", message.id)
        return mime


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
