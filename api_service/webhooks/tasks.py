"""Background task of the worker: POSTing the webhook outbox, at least once, on Postmark's retry
schedule, signed.

Beyond Postmark, every request carries `X-Postgate-Signature: v1=<hex>`, an HMAC-SHA256 of
`<X-Postgate-Timestamp>.<body>` keyed with the server's webhook secret (see README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.core import observe
from api_service.models import WebhookDeliveryStatus
from api_service.webhooks import repository


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def schedule(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


async def send_due(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    retry_schedule: list[float],
    limit: int = 50,
    lease: float = 120,
) -> int:
    async with sessionmaker() as session, session.begin():
        due = await repository.claim_due(session=session, limit=limit, lease_seconds=lease)
    for item in due:
        await _send(sessionmaker=sessionmaker, client=client, item=item, retry_schedule=retry_schedule)
    return len(due)


async def _send(
    *, sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, item: repository.Due, retry_schedule: list[float]
) -> None:
    body = json.dumps(item.payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    remaining = max(0, len(retry_schedule) - (item.attempts - 1))
    headers = {h["Name"]: h["Value"] for h in item.headers}
    headers |= {
        "Content-Type": "application/json",
        "User-Agent": "Postgate-Webhooks",
        "X-Postgate-Timestamp": timestamp,
        "X-Postgate-Signature": signature(item.secret, timestamp, body),
        "X-PM-Retries-Remaining": str(max(0, remaining - 1)),
        "X-PM-Webhook-Trace-Id": f"pg-{item.id}",
    }
    auth: httpx.Auth | httpx._client.UseClientDefault = (
        httpx.BasicAuth(item.username, item.password) if item.username else httpx.USE_CLIENT_DEFAULT
    )
    status: int | None = None
    error = ""
    try:
        response = await client.post(item.url, content=body, headers=headers, auth=auth)
        status = response.status_code
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    now = datetime.now(UTC)
    values: dict[str, Any] = {"last_status": status, "last_error": error, "lease_until": None}
    if status is not None and 200 <= status < 300:
        values |= {"status": WebhookDeliveryStatus.DELIVERED.value, "delivered_at": now}
    elif status == 403 or item.attempts > len(retry_schedule):
        # Postmark stops retrying on 403; otherwise the schedule runs out.
        values["status"] = WebhookDeliveryStatus.FAILED.value
    else:
        values["next_attempt_at"] = now + timedelta(seconds=retry_schedule[item.attempts - 1])
    observe.webhook_attempt(status=status, gave_up=values.get("status") == WebhookDeliveryStatus.FAILED.value)
    async with sessionmaker() as session, session.begin():
        await repository.record_attempt(session=session, delivery_id=item.id, values=values)
