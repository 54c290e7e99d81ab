"""Who hears about an event: the stream's /webhooks with the trigger on, and the legacy hook URLs.

Events are written to the outbox in the transaction that records them, so a webhook is never
promised for something that was rolled back, nor lost when a process dies.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.netguard import UrlGuard
from api_service.errors import NotFound, PostmarkError
from api_service.models import Bounce, Server, Webhook
from api_service.servers import repository as servers_repository
from api_service.servers.service import valid_hook_url
from api_service.webhooks import payloads, repository
from shared.constants import DEFAULT_MESSAGE_STREAM, BounceType, StreamType, WebhookTrigger
from shared.schemas.webhooks import WebhookWrite

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
TRIGGERS: dict[str, dict[str, bool]] = {
    WebhookTrigger.OPEN: {"Enabled": False, "PostFirstOpenOnly": False},
    WebhookTrigger.CLICK: {"Enabled": False},
    WebhookTrigger.DELIVERY: {"Enabled": False},
    WebhookTrigger.BOUNCE: {"Enabled": False, "IncludeContent": False},
    WebhookTrigger.SPAM_COMPLAINT: {"Enabled": False, "IncludeContent": False},
    WebhookTrigger.SUBSCRIPTION_CHANGE: {"Enabled": False},
}


def _target(
    *, server_id: int, record_type: WebhookTrigger, url: str, payload: dict[str, Any], hook: Webhook | None = None
) -> dict[str, Any]:
    return {
        "server_id": server_id,
        "record_type": record_type.value,
        "url": url,
        "payload": payload,
        "http_auth_username": hook.http_auth_username if hook else "",
        "http_auth_password": hook.http_auth_password if hook else "",
        "http_headers": hook.http_headers if hook else [],
    }


async def bounce_recorded(
    *, session: AsyncSession, server: Server, bounce: Bounce, metadata: dict[str, str], dump: bytes | None = None
) -> None:
    """Queue the Bounce (or SpamComplaint) webhook of a new bounce; `dump` is its raw source, if kept."""
    if bounce.type == BounceType.SMTP_API_ERROR.value and not server.enable_smtp_api_error_hooks:
        return
    trigger = WebhookTrigger.SPAM_COMPLAINT if bounce.type == BounceType.SPAM_COMPLAINT.value else WebhookTrigger.BOUNCE
    rows = []
    for hook in await repository.stream_webhooks(session=session, server_id=server.id, stream=bounce.message_stream):
        setting = hook.triggers.get(trigger, {})
        if setting.get("Enabled"):
            payload = payloads.bounce_payload(bounce, metadata=metadata, include_content=bool(setting.get("IncludeContent")), dump=dump)
            rows.append(_target(server_id=server.id, record_type=trigger, url=hook.url, payload=payload, hook=hook))
    if trigger is WebhookTrigger.BOUNCE and server.bounce_hook_url:
        payload = payloads.bounce_payload(bounce, metadata=metadata, include_content=server.include_bounce_content_in_hook, dump=dump)
        rows.append(_target(server_id=server.id, record_type=trigger, url=server.bounce_hook_url, payload=payload))
    await repository.enqueue(session=session, rows=rows)


async def has_webhooks(*, session: AsyncSession, server_id: int, stream: str) -> bool:
    return bool(await repository.stream_webhooks(session=session, server_id=server_id, stream=stream))


async def event_recorded(*, session: AsyncSession, server: Server, stream: str, trigger: WebhookTrigger, payload: dict[str, Any]) -> None:
    """Queue a Delivery or SubscriptionChange webhook."""
    rows = [
        _target(server_id=server.id, record_type=trigger, url=hook.url, payload=payload, hook=hook)
        for hook in await repository.stream_webhooks(session=session, server_id=server.id, stream=stream)
        if hook.triggers.get(trigger, {}).get("Enabled")
    ]
    if trigger is WebhookTrigger.DELIVERY and server.delivery_hook_url:
        rows.append(_target(server_id=server.id, record_type=trigger, url=server.delivery_hook_url, payload=payload))
    await repository.enqueue(session=session, rows=rows)


# --- the /webhooks API ------------------------------------------------------------------------


def merge_triggers(current: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    merged = {name: dict(current.get(name, default)) for name, default in TRIGGERS.items()}
    for name, values in (given or {}).items():
        if name not in TRIGGERS or not isinstance(values, dict):
            raise PostmarkError(1361, f"Invalid trigger '{name}'.")
        for key, value in values.items():
            if key not in TRIGGERS[name] or not isinstance(value, bool):
                raise PostmarkError(1361, f"Invalid value for {name}.{key}.")
            merged[name][key] = value
    return merged


async def check_url(url: str | None, *, url_guard: UrlGuard) -> str:
    url = (url or "").strip()
    if not url or not valid_hook_url(url):
        raise PostmarkError(1354, "The webhook Url is missing or invalid.")
    refusal = await url_guard.refusal(url)
    if refusal is not None:
        raise PostmarkError(1354, f"The webhook Url is not allowed: {refusal}. Webhooks may only reach public addresses.")
    return url


def check_headers(headers: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    cleaned = []
    for header in headers or []:
        name, value = str(header.get("Name") or ""), str(header.get("Value") or "")
        if not HEADER_NAME.match(name) or any(c in value for c in "\r\n\x00"):
            raise PostmarkError(1358, f"Invalid HttpHeaders entry '{name}'.")
        cleaned.append({"Name": name, "Value": value})
    return cleaned


async def get_webhook_or_raise(*, session: AsyncSession, server_id: int, webhook_id: int) -> Webhook:
    hook = await repository.get_webhook(session=session, server_id=server_id, webhook_id=webhook_id)
    if hook is None:
        raise NotFound(1352, f"Webhook {webhook_id} was not found.")
    return hook


async def create_webhook(*, session: AsyncSession, server: Server, data: WebhookWrite, url_guard: UrlGuard) -> Webhook:
    stream_id = (data.MessageStream or DEFAULT_MESSAGE_STREAM).lower()
    stream = await servers_repository.get_stream(session=session, server_id=server.id, stream_id=stream_id)
    if stream is None:
        raise PostmarkError(1226, f"The message stream '{stream_id}' was not found.")
    if stream.stream_type == StreamType.INBOUND.value:
        raise PostmarkError(1351, "Webhooks cannot be added to an inbound stream; use InboundHookUrl.")
    hook = Webhook(
        server_id=server.id,
        url=await check_url(data.Url, url_guard=url_guard),
        message_stream=stream_id,
        http_auth_username=(data.HttpAuth.Username or "") if data.HttpAuth else "",
        http_auth_password=(data.HttpAuth.Password or "") if data.HttpAuth else "",
        http_headers=check_headers([h.model_dump() for h in data.HttpHeaders or []]),
        triggers=merge_triggers({}, data.Triggers),
    )
    return await repository.add_webhook(session=session, hook=hook)


async def edit_webhook(*, session: AsyncSession, server_id: int, webhook_id: int, data: WebhookWrite, url_guard: UrlGuard) -> Webhook:
    hook = await get_webhook_or_raise(session=session, server_id=server_id, webhook_id=webhook_id)
    if data.MessageStream is not None and data.MessageStream.lower() != hook.message_stream:
        raise PostmarkError(1357, "The MessageStream of a webhook cannot be changed.")
    if data.Url is not None:
        hook.url = await check_url(data.Url, url_guard=url_guard)
    if data.HttpAuth is not None:
        hook.http_auth_username, hook.http_auth_password = data.HttpAuth.Username or "", data.HttpAuth.Password or ""
    if data.HttpHeaders is not None:
        hook.http_headers = check_headers([h.model_dump() for h in data.HttpHeaders])
    if data.Triggers is not None:
        hook.triggers = merge_triggers(hook.triggers, data.Triggers)
    await session.flush()
    return hook


async def delete_webhook(*, session: AsyncSession, server_id: int, webhook_id: int) -> None:
    hook = await get_webhook_or_raise(session=session, server_id=server_id, webhook_id=webhook_id)
    await repository.delete_webhook(session=session, hook=hook)


async def list_webhooks(*, session: AsyncSession, server_id: int, stream: str | None) -> list[Webhook]:
    return await repository.list_webhooks(session=session, server_id=server_id, stream=stream.lower() if stream else None)
