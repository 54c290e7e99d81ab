"""POSTing the webhook outbox: at least once, on Postmark's retry schedule, signed.

Beyond Postmark, every request carries `X-Postgate-Signature: v1=<hex>`, an HMAC-SHA256 of
`<X-Postgate-Timestamp>.<body>` keyed with the server's webhook secret (see README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.models import WebhookDelivery

CLAIM = text(
    """
    UPDATE webhook_deliveries AS d
       SET lease_until = now() + make_interval(secs => :lease), attempts = d.attempts + 1
      FROM servers AS s
     WHERE s.id = d.server_id AND d.id IN (
           SELECT id FROM webhook_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
            ORDER BY next_attempt_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.url, d.payload, d.http_headers, d.http_auth_username, d.http_auth_password, d.attempts, s.webhook_secret
    """
)


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    url: str
    payload: dict[str, Any]
    headers: list[dict[str, str]]
    username: str
    password: str
    attempts: int
    secret: str


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
        rows = (await session.execute(CLAIM, {"limit": limit, "lease": lease})).all()
    due = [Due(*row) for row in rows]
    for item in due:
        await _send(sessionmaker=sessionmaker, client=client, item=item, retry_schedule=retry_schedule)
    return len(due)


async def _send(
    *, sessionmaker: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, item: Due, retry_schedule: list[float]
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
        values |= {"status": "delivered", "delivered_at": now}
    elif status == 403 or item.attempts > len(retry_schedule):
        # Postmark stops retrying on 403; otherwise the schedule runs out.
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = now + timedelta(seconds=retry_schedule[item.attempts - 1])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == item.id).values(**values))
