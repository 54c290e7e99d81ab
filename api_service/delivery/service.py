"""Delivery: claim due recipients, send them, and record what each SMTP reply means for the
recipient, its message and its webhooks (through the packages that own those records)."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.bounces import service as bounces
from api_service.bounces.classify import Outcome, classify
from api_service.bounces.verp import return_path
from api_service.config import Settings
from api_service.core import observe
from api_service.delivery.transport import Attempt, Reply, Transport
from api_service.domains import dkim
from api_service.domains import service as domains
from api_service.email import pipeline
from api_service.email.addresses import domain_of
from api_service.messages import service as messages
from api_service.messages.service import Claimed
from api_service.models import Message, Server
from api_service.servers import service as servers_service
from api_service.webhooks import service as webhooks
from api_service.webhooks.payloads import delivery_payload
from shared.constants import BounceType, DeliveryType, WebhookTrigger

log = logging.getLogger("postgate.delivery")
SANDBOX_REPLY = Reply(250, "Sandboxed: accepted, not delivered")


def retry_delay(*, attempts: int, first: float) -> float:
    """Doubling from `first`, with ±10 % jitter so retries of a burst spread out."""
    return float(first * 2 ** max(0, attempts - 1) * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security


async def deliver_batch(*, sessionmaker: async_sessionmaker[AsyncSession], transport: Transport, settings: Settings) -> int:
    """Claim due recipients, deliver them grouped by message and domain; returns how many."""
    async with sessionmaker() as session, session.begin():
        claimed = await messages.claim_due(
            session=session, limit=settings.delivery_batch_size, lease_seconds=settings.delivery_lease_seconds
        )
    if not claimed:
        return 0
    async with sessionmaker() as session:
        loaded = await messages.get_messages(session=session, ids={c.message_id for c in claimed})
        servers = await servers_service.get_servers(session=session, ids={m.server_id for m in loaded.values()})
        keys = await domains.signing_keys(session=session, domains={domain_of(m.from_email) for m in loaded.values()})
    groups: dict[tuple[uuid.UUID, str], list[Claimed]] = defaultdict(list)
    for item in claimed:
        groups[(item.message_id, domain_of(item.email))].append(item)
    signed: dict[uuid.UUID, bytes] = {}
    limit = asyncio.Semaphore(settings.delivery_concurrency)

    async def one(message_id: uuid.UUID, domain: str, items: list[Claimed]) -> Outcomes | None:
        async with limit:
            message = loaded.get(message_id)
            if message is None:  # deleted with its server meanwhile
                return None
            server = servers[message.server_id]
            if message.sandboxed or server.delivery_type == DeliveryType.SANDBOX.value:
                attempt = Attempt(replies={i.email: SANDBOX_REPLY for i in items}, server="sandbox")
            else:
                if message_id not in signed:
                    # One copy for the recipients of a domain: personalising per recipient will
                    # split the group when a message has per-recipient content.
                    signed[message_id] = sign(
                        pipeline.personalise(message.raw_mime, message=message, recipient=items[0].email), message, keys
                    )
                attempt = await transport.send(
                    sender=return_path(message_id=message_id, domain=settings.return_path_domain),
                    domain=domain,
                    recipients=[i.email for i in items],
                    data=signed[message_id],
                )
            return Outcomes(message=message, server=server, items=items, attempt=attempt)

    outcomes = [o for o in await asyncio.gather(*(one(mid, domain, items) for (mid, domain), items in groups.items())) if o is not None]
    try:
        # One transaction (one commit) for the whole batch …
        async with sessionmaker() as session, session.begin():
            hooks = HookCache()
            for outcome in outcomes:
                await record_attempt(session=session, outcome=outcome, settings=settings, hooks=hooks)
            await messages.settle(session=session, message_ids={o.message.id for o in outcomes})
    except Exception:
        # … but one message that cannot be recorded must not hold back the others.
        log.exception("recording a batch failed; recording its messages one by one")
        for outcome in outcomes:
            try:
                async with sessionmaker() as session, session.begin():
                    await record_attempt(session=session, outcome=outcome, settings=settings, hooks=HookCache())
                    await messages.settle(session=session, message_ids={outcome.message.id})
            except Exception:  # its lease expires and it is tried again
                log.exception("recording the delivery of %s failed", outcome.message.id)
    return len(claimed)


@dataclass(slots=True)
class Outcomes:
    message: Message
    server: Server
    items: list[Claimed]
    attempt: Attempt


class HookCache(dict[tuple[int, str], bool]):
    """Within one batch: does a server's stream have any webhook at all? (Most have none.)"""


def sign(mime: bytes, message: Message, keys: dict[str, domains.SigningKey]) -> bytes:
    key = keys.get(domain_of(message.from_email))
    if key is None:
        return mime
    try:
        return dkim.sign(mime, domain=key.domain, selector=key.selector, private_pem=key.private_pem)
    except Exception:  # a message dkimpy cannot sign is still delivered, unsigned
        log.exception("DKIM signing failed for %s", message.id)
        return mime


async def record_attempt(*, session: AsyncSession, outcome: Outcomes, settings: Settings, hooks: HookCache) -> None:
    """What each recipient's reply means: delivered, retried later, or bounced."""
    message, server, items, attempt = outcome.message, outcome.server, outcome.items, outcome.attempt
    now = datetime.now(UTC)
    key = (server.id, message.message_stream)
    if key not in hooks:
        hooks[key] = bool(server.delivery_hook_url) or await webhooks.has_webhooks(
            session=session, server_id=server.id, stream=message.message_stream
        )
    for item in items:
        reply = attempt.replies.get(item.email, Reply(451, "4.3.0 No reply for this recipient"))
        text = f"{reply.code} {reply.message}".strip()
        details = {"DeliveryMessage": text, "DestinationServer": attempt.server, "DestinationIP": attempt.ip}
        verdict = classify(reply.code, reply.message)
        observe.delivery_attempt(
            message_id=message.id, server_id=server.id, recipient=item.email, code=reply.code, outcome=verdict.outcome.value
        )
        if verdict.outcome is Outcome.DELIVERED:
            await messages.record_delivered(session=session, item=item, response=text, at=now, details=details)
            if hooks[key]:
                payload = delivery_payload(
                    server_id=server.id,
                    stream=message.message_stream,
                    message_id=str(message.id),
                    recipient=item.email,
                    tag=message.tag,
                    delivered_at=now,
                    details=text,
                    metadata=message.metadata_,
                )
                await webhooks.event_recorded(
                    session=session, server=server, stream=message.message_stream, trigger=WebhookTrigger.DELIVERY, payload=payload
                )
            continue
        bounce_type = verdict.bounce_type
        if verdict.outcome is Outcome.RETRY:
            delay = retry_delay(attempts=item.attempts, first=settings.delivery_retry_first_seconds)
            if now + timedelta(seconds=delay) <= message.created_at + timedelta(seconds=settings.delivery_retry_horizon_seconds):
                await messages.record_deferred(
                    session=session, item=item, response=text, until=now + timedelta(seconds=delay), details=details
                )
                continue
            bounce_type = BounceType.SOFT_BOUNCE
        bounce = await bounces.record_message_bounce(
            session=session, message=message, bounce_type=bounce_type or BounceType.UNKNOWN, email=item.email, details=text
        )
        await messages.record_bounced(
            session=session, item=item, response=text, details={"Summary": text, "BounceID": str(bounce.id), **details}
        )
