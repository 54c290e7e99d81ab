from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Webhook, WebhookDelivery, WebhookDeliveryStatus
from shared.schemas.webhook_payloads import OutboxPayload, event_json


async def stream_webhooks(*, session: AsyncSession, server_id: int, stream: str) -> list[Webhook]:
    stmt = select(Webhook).where(Webhook.server_id == server_id, Webhook.message_stream == stream).order_by(Webhook.id)
    return list((await session.execute(stmt)).scalars().all())


async def list_webhooks(*, session: AsyncSession, server_id: int, stream: str | None) -> list[Webhook]:
    stmt = select(Webhook).where(Webhook.server_id == server_id)
    if stream:
        stmt = stmt.where(Webhook.message_stream == stream)
    return list((await session.execute(stmt.order_by(Webhook.id))).scalars().all())


async def get_webhook(*, session: AsyncSession, server_id: int, webhook_id: int) -> Webhook | None:
    stmt = select(Webhook).where(Webhook.server_id == server_id, Webhook.id == webhook_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_webhook(*, session: AsyncSession, hook: Webhook) -> Webhook:
    session.add(hook)
    await session.flush()
    return hook


async def delete_webhook(*, session: AsyncSession, hook: Webhook) -> None:
    await session.delete(hook)
    await session.flush()


# --- the outbox ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One POST to queue: a typed payload for one URL, with that URL's credentials."""

    server_id: int
    record_type: str
    url: str
    payload: OutboxPayload
    http_auth_username: str = ""
    http_auth_password: str = ""
    http_headers: list[dict[str, str]] = field(default_factory=list)
    retry_schedule: list[float] | None = None
    origin_id: str = ""
    webhook_id: int | None = None


def _row(item: Outgoing, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "next_attempt_at": now,
        "status": WebhookDeliveryStatus.PENDING,
        "server_id": item.server_id,
        "record_type": item.record_type,
        "url": item.url,
        "payload": event_json(item.payload),
        "http_auth_username": item.http_auth_username,
        "http_auth_password": item.http_auth_password,
        "http_headers": item.http_headers,
        "origin_id": item.origin_id,
        "webhook_id": item.webhook_id,
    }
    if item.retry_schedule is not None:  # absent, the column is SQL NULL (the worker's schedule), not JSON null
        row["retry_schedule"] = item.retry_schedule
    return row


async def enqueue(*, session: AsyncSession, rows: list[Outgoing]) -> None:
    """Write the POSTs to the outbox, each payload serialised once, in the caller's transaction."""
    if rows:
        now = datetime.now(UTC)
        await session.execute(insert(WebhookDelivery), [_row(item, now) for item in rows])


# The signing key: the webhook's own once rotated, else the server's; the previous one too while
# its overlap lasts.
CLAIM = text(
    """
    UPDATE webhook_deliveries AS d
       SET lease_until = now() + make_interval(secs => :lease), attempts = d.attempts + 1, lease_token = :token
      FROM servers AS s
     WHERE s.id = d.server_id AND d.id IN (
           SELECT id FROM webhook_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
            ORDER BY next_attempt_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.url, d.payload, d.http_headers, d.http_auth_username, d.http_auth_password, d.attempts,
              COALESCE((SELECT w.secret FROM webhooks AS w WHERE w.id = d.webhook_id), s.webhook_secret),
              d.lease_token, d.record_type, d.retry_schedule, d.origin_id,
              COALESCE((SELECT w.previous_secret FROM webhooks AS w
                         WHERE w.id = d.webhook_id AND w.previous_secret_until > now()), ''),
              d.replay_of
    """
)


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed outbox row, with its server's signing secret."""

    id: int
    url: str
    payload: dict[str, Any]
    headers: list[dict[str, str]]
    username: str
    password: str
    attempts: int
    secret: str
    lease_token: uuid.UUID
    record_type: str = ""
    retry_schedule: list[float] | None = None
    origin_id: str = ""
    previous_secret: str = ""
    """Set while a rotation's overlap lasts: the request is signed with both keys."""
    replay_of: int | None = None


async def claim_due(*, session: AsyncSession, limit: int, lease_seconds: float) -> list[Due]:
    rows = (await session.execute(CLAIM, {"limit": limit, "lease": lease_seconds, "token": uuid.uuid4()})).all()
    return [Due(*row) for row in rows]


async def record_attempt(*, session: AsyncSession, item: Due, values: dict[str, Any]) -> bool:
    """Record an attempt's outcome; False (nothing written) when the claim no longer holds the row."""
    result = await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == item.id, WebhookDelivery.lease_token == item.lease_token).values(**values)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


async def replay(
    *, session: AsyncSession, hook: Webhook, delivery_id: int | None, since: datetime | None, until: datetime | None, limit: int
) -> int:
    """Queue again, as new pending rows, this webhook's past POSTs: one by id, or those made in
    [since, until) (at most `limit`); with the webhook's current URL and credentials. How many."""
    where = "webhook_id = :hook AND replay_of IS NULL"
    params: dict[str, Any] = {"hook": hook.id, "limit": limit}
    if delivery_id is not None:
        where += " AND id = :delivery"
        params["delivery"] = delivery_id
    else:
        where += " AND created_at >= :since AND created_at < :until"
        params |= {"since": since, "until": until}
    statement = text(
        f"""
        INSERT INTO webhook_deliveries
               (server_id, record_type, url, http_auth_username, http_auth_password, http_headers, payload,
                retry_schedule, origin_id, webhook_id, replay_of, status, attempts, last_error, next_attempt_at, created_at)
        SELECT server_id, record_type, :url, :username, :password, CAST(:headers AS jsonb), payload,
               retry_schedule, origin_id, webhook_id, id, 'pending', 0, '', now(), now()
          FROM webhook_deliveries
         WHERE {where}
         ORDER BY created_at, id
         LIMIT :limit
        """  # noqa: S608 - `where` is built from constants above; values are bound
    )
    params |= {
        "url": hook.url,
        "username": hook.http_auth_username,
        "password": hook.http_auth_password,
        "headers": orjson.dumps(hook.http_headers).decode(),
    }
    result = await session.execute(statement, params)
    return int(cast(CursorResult[Any], result).rowcount)


async def recent_deliveries(*, session: AsyncSession, server_id: int, url: str, limit: int) -> list[WebhookDelivery]:
    """The newest outbox rows POSTed (or to be POSTed) to a URL, newest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.server_id == server_id, WebhookDelivery.url == url)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


async def deliveries_about(*, session: AsyncSession, server_id: int, record_type: str, origin_id: str, limit: int) -> list[WebhookDelivery]:
    """The outbox rows about one record (`origin_id`), newest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.server_id == server_id, WebhookDelivery.record_type == record_type, WebhookDelivery.origin_id == origin_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


DELETE_MENTIONING = text(
    """
    DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE payload::text ~* :pattern LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)


async def delete_deliveries_mentioning(*, session: AsyncSession, pattern: str, limit: int) -> int:
    """Up to `limit` outbox rows whose payload matches the PostgreSQL regular expression `pattern`."""
    return len((await session.execute(DELETE_MENTIONING, {"pattern": pattern, "limit": limit})).all())


# --- retention -----------------------------------------------------------------------------------

DELETE_FINISHED = text(
    """
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
         WHERE server_id = :server_id AND status <> 'pending' AND created_at < now() - make_interval(days => :days)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


async def delete_finished(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's outbox rows older than `days` that were sent or given up on;
    pending rows stay whatever their age."""
    result = cast(CursorResult[Any], await session.execute(DELETE_FINISHED, {"server_id": server_id, "days": days, "limit": limit}))
    return int(result.rowcount)
