"""Background task of the worker: POSTing the webhook outbox, at least once, on Postmark's retry
schedule, signed.

Beyond Postmark, every request carries `X-Postgate-Signature: v1=<hex>`, an HMAC-SHA256 of
`<X-Postgate-Timestamp>.<body>` keyed with the webhook's own key once rotated, else the server's webhook
secret; during a rotation's overlap, with both (`v1=<new>,v1=<previous>`; see README).

A claim's requests are sent concurrently, each under a total deadline (a receiver that trickles
its answer cannot hold the others up), and the lease outlasts that deadline, so no other worker
sends the same event while a request is in flight; the final update is fenced by the claim's
token; attempts that end together are recorded in one transaction. Every connection goes through the network guard (`core.guarded_http`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.core import observe
from api_service.core.groupcommit import GroupCommit
from api_service.core.guarded_http import guarded_client
from api_service.models import WebhookDeliveryStatus
from api_service.webhooks import repository

log = logging.getLogger("postgate.webhooks")

# What a claim's lease allows beyond the deadline of its requests: recording their outcomes.
LEASE_MARGIN_SECONDS = 60.0


def signature(secret: str, timestamp: str, body: bytes, previous: str = "") -> str:
    """`v1=<hex>`; while a key rotation overlaps, `v1=<new>,v1=<previous>` (a receiver accepts any)."""
    signed = timestamp.encode() + b"." + body
    found = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if previous:
        found += ",v1=" + hmac.new(previous.encode(), signed, hashlib.sha256).hexdigest()
    return found


def schedule(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one attempt did to an outbox row: DELIVERED, FAILED (no more attempts) or PENDING
    (another attempt is scheduled), for the outcome handler of the row's record type."""

    delivery_id: int
    record_type: str
    origin_id: str
    status: WebhookDeliveryStatus
    http_status: int | None
    error: str
    attempts: int


class OutcomeHandler(Protocol):
    """Called in the transaction that records the attempt (a domain's own bookkeeping, e.g. an
    inbound message becoming Processed or Failed); the webhooks package knows no domain."""

    async def __call__(self, *, session: AsyncSession, outcome: DeliveryOutcome) -> None: ...


def webhook_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's client for webhook URLs: only public addresses and WEBHOOK_ALLOWED_NETWORKS."""
    guard = settings.webhook_url_guard()
    return guarded_client(allowed=guard.allowed, resolver=guard.resolver, timeout=settings.webhook_timeout_seconds)


async def send_due(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    retry_schedule: list[float],
    deadline: float = 10.0,
    limit: int = 50,
    outcome_handlers: Mapping[str, OutcomeHandler] | None = None,
) -> int:
    """Claim up to `limit` due events and POST them all at once, each within `deadline` seconds; a
    row's own retry schedule, when it has one, replaces `retry_schedule`."""
    async with sessionmaker() as session, session.begin():
        due = await repository.claim_due(session=session, limit=limit, lease_seconds=2 * deadline + LEASE_MARGIN_SECONDS)
    attempts = recorder(sessionmaker=sessionmaker)
    try:
        await asyncio.gather(
            *(
                _send(
                    attempts=attempts,
                    client=client,
                    item=item,
                    retry_schedule=item.retry_schedule if item.retry_schedule is not None else retry_schedule,
                    deadline=deadline,
                    on_outcome=(outcome_handlers or {}).get(item.record_type),
                )
                for item in due
            )
        )
    finally:
        await attempts.close()
    return len(due)


@dataclass(frozen=True, slots=True)
class Attempted:
    """One POST's result, to be recorded: the row's new values and who else needs to know."""

    item: repository.Due
    values: dict[str, Any]
    http_status: int | None
    error: str
    on_outcome: OutcomeHandler | None


class Recorder:
    """Group commit of a claim's attempts: those that end while a commit runs share the next
    transaction (one commit, not one per event); each `_send` waits for its own."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

        async def together(session: AsyncSession, attempts: list[Attempted]) -> list[None]:
            for attempt in attempts:
                await _record(session=session, attempt=attempt)
            return [None] * len(attempts)

        self.commits: GroupCommit[Attempted, None] = GroupCommit(sessionmaker=sessionmaker, write=together, what="webhook attempts")

    async def write(self, attempt: Attempted) -> None:
        try:
            await self.commits.submit(attempt)
        except Exception:
            # Its savepoint or the group's COMMIT failed: once more in a transaction of its own.
            try:
                async with self.sessionmaker() as session, session.begin():
                    await _record(session=session, attempt=attempt)
            except Exception:
                log.exception("recording a webhook attempt failed")

    async def close(self) -> None:
        await self.commits.close()


def recorder(*, sessionmaker: async_sessionmaker[AsyncSession]) -> Recorder:
    return Recorder(sessionmaker=sessionmaker)


async def _record(*, session: AsyncSession, attempt: Attempted) -> None:
    item, values = attempt.item, attempt.values
    # Fenced: a worker whose claim expired (another one has the row now) records nothing, and
    # tells the row's domain nothing either.
    if await repository.record_attempt(session=session, item=item, values=values) and attempt.on_outcome is not None:
        outcome = DeliveryOutcome(
            delivery_id=item.id,
            record_type=item.record_type,
            origin_id=item.origin_id,
            status=WebhookDeliveryStatus(values.get("status", WebhookDeliveryStatus.PENDING)),
            http_status=attempt.http_status,
            error=attempt.error,
            attempts=item.attempts,
        )
        await attempt.on_outcome(session=session, outcome=outcome)


async def post(*, client: httpx.AsyncClient, item: repository.Due, attempts_left: int, deadline: float) -> tuple[int | None, str]:
    """One attempt: (HTTP status, or None with the reason it failed)."""
    body = json.dumps(item.payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {h["Name"]: h["Value"] for h in item.headers}
    headers |= {
        "Content-Type": "application/json",
        "User-Agent": "Postgate-Webhooks",
        "X-Postgate-Timestamp": timestamp,
        "X-Postgate-Signature": signature(item.secret, timestamp, body, item.previous_secret),
        "X-PM-Retries-Remaining": str(attempts_left),
        "X-PM-Webhook-Trace-Id": f"pg-{item.id}",
    }
    if item.replay_of is not None:
        headers["X-Postgate-Replay-Of"] = f"pg-{item.replay_of}"
    auth: httpx.Auth | httpx._client.UseClientDefault = (
        httpx.BasicAuth(item.username, item.password) if item.username else httpx.USE_CLIENT_DEFAULT
    )
    try:
        # The whole exchange, redirects included, within the deadline: httpx's timeouts are per
        # read, which a receiver answering a byte at a time never trips. The body of the answer
        # is not read: only its status counts.
        async with asyncio.timeout(deadline):
            async with client.stream("POST", item.url, content=body, headers=headers, auth=auth) as response:
                return response.status_code, ""
    except TimeoutError:
        return None, f"No answer within {deadline:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


async def _send(
    *,
    attempts: Recorder,
    client: httpx.AsyncClient,
    item: repository.Due,
    retry_schedule: list[float],
    deadline: float,
    on_outcome: OutcomeHandler | None = None,
) -> None:
    remaining = max(0, len(retry_schedule) - (item.attempts - 1))
    status, error = await post(client=client, item=item, attempts_left=max(0, remaining - 1), deadline=deadline)
    now = datetime.now(UTC)
    values: dict[str, Any] = {"last_status": status, "last_error": error, "lease_until": None, "lease_token": None}
    if status is not None and 200 <= status < 300:
        values |= {"status": WebhookDeliveryStatus.DELIVERED, "delivered_at": now}
    elif status == 403 or item.attempts > len(retry_schedule):
        # Postmark stops retrying on 403; otherwise the schedule runs out.
        values["status"] = WebhookDeliveryStatus.FAILED
    else:
        values["next_attempt_at"] = now + timedelta(seconds=retry_schedule[item.attempts - 1])
    observe.webhook_attempt(status=status, gave_up=values.get("status") == WebhookDeliveryStatus.FAILED)
    await attempts.write(Attempted(item=item, values=values, http_status=status, error=error, on_outcome=on_outcome))
