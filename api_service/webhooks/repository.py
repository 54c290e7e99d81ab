from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Server, Webhook, WebhookDelivery


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


async def get_server(*, session: AsyncSession, server_id: int) -> Server | None:
    return await session.get(Server, server_id)


async def enqueue(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        now = datetime.now(UTC)
        await session.execute(insert(WebhookDelivery), [{"next_attempt_at": now, "status": "pending", **row} for row in rows])


async def add_webhook(*, session: AsyncSession, hook: Webhook) -> Webhook:
    session.add(hook)
    await session.flush()
    return hook


async def delete_webhook(*, session: AsyncSession, hook: Webhook) -> None:
    await session.delete(hook)
    await session.flush()


async def recent_deliveries(*, session: AsyncSession, server_id: int, url: str, limit: int) -> list[WebhookDelivery]:
    """The newest outbox rows POSTed (or to be POSTed) to a URL, newest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.server_id == server_id, WebhookDelivery.url == url)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
