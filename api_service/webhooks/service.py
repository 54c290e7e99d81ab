"""Who hears about an event: the stream's /webhooks with the trigger on, and the legacy hook URLs.

Events are written to the outbox in the transaction that records them, so a webhook is never
promised for something that was rolled back, nor lost when a process dies.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.netguard import UrlGuard
from api_service.errors import NotFound, PostmarkError
from api_service.mail.address_match import postgres_pattern
from api_service.models import Bounce, Server, Webhook, WebhookDelivery
from api_service.servers.service import valid_hook_url
from api_service.streams import service as streams
from api_service.webhooks import payloads, repository
from shared.constants import (
    BOUNCE_TYPES,
    DEFAULT_MESSAGE_STREAM,
    BounceType,
    ErrorCode,
    StreamType,
    SuppressionOrigin,
    SuppressionReason,
    WebhookTrigger,
)
from shared.schemas.webhook_payloads import (
    BounceWebhook,
    DeliveryWebhook,
    OutboxPayload,
    SpamComplaintWebhook,
    StreamPausedWebhook,
    SubscriptionChangeWebhook,
    WebhookPayload,
)
from shared.schemas.webhooks import WebhookWrite

MAX_SECRET_OVERLAP_SECONDS = 7 * 86400
MAX_REPLAY = 10_000  # deliveries one replay request queues again
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
    *, server_id: int, record_type: WebhookTrigger, url: str, payload: WebhookPayload, hook: Webhook | None = None
) -> repository.Outgoing:
    return repository.Outgoing(
        server_id=server_id,
        record_type=record_type.value,
        url=url,
        payload=payload,
        http_auth_username=hook.http_auth_username if hook else "",
        http_auth_password=hook.http_auth_password if hook else "",
        http_headers=hook.http_headers if hook else [],
        webhook_id=hook.id if hook else None,
    )


async def bounce_recorded(
    *, session: AsyncSession, server: Server, bounce: Bounce, metadata: dict[str, str], dump: bytes | None = None
) -> None:
    """Queue the Bounce (or SpamComplaint) webhook of a new bounce; `dump` is its raw source, if kept."""
    if bounce.type == BounceType.SMTP_API_ERROR and not server.enable_smtp_api_error_hooks:
        return
    trigger = WebhookTrigger.SPAM_COMPLAINT if bounce.type == BounceType.SPAM_COMPLAINT else WebhookTrigger.BOUNCE
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


async def stream_paused(*, session: AsyncSession, server_id: int, payload: StreamPausedWebhook) -> int:
    """Tell the paused stream's webhooks that take SpamComplaint (beyond Postmark: RecordType
    StreamPaused); returns how many were queued."""
    rows = [
        _outgoing(server_id=server_id, record_type=payload.RecordType, url=hook.url, payload=payload, hook=hook)
        for hook in await repository.stream_webhooks(session=session, server_id=server_id, stream=payload.MessageStream)
        if hook.triggers.get(WebhookTrigger.SPAM_COMPLAINT, {}).get("Enabled")
    ]
    await repository.enqueue(session=session, rows=rows)
    return len(rows)


def _outgoing(*, server_id: int, record_type: str, url: str, payload: OutboxPayload, hook: Webhook) -> repository.Outgoing:
    return repository.Outgoing(
        server_id=server_id,
        record_type=record_type,
        url=url,
        payload=payload,
        http_auth_username=hook.http_auth_username,
        http_auth_password=hook.http_auth_password,
        http_headers=hook.http_headers,
    )


async def enqueue_post(
    *,
    session: AsyncSession,
    server_id: int,
    record_type: str,
    url: str,
    payload: OutboxPayload,
    retry_schedule: list[float] | None = None,
    origin_id: str = "",
) -> None:
    """Queue one POST of another domain's event (inbound mail) in the outbox. `retry_schedule`
    overrides the worker's for this row; `origin_id` tells the worker's outcome handler for
    `record_type` which record the event is about."""
    row = repository.Outgoing(
        server_id=server_id, record_type=record_type, url=url, payload=payload, retry_schedule=retry_schedule, origin_id=origin_id
    )
    await repository.enqueue(session=session, rows=[row])


async def has_webhooks(*, session: AsyncSession, server_id: int, stream: str) -> bool:
    return bool(await repository.stream_webhooks(session=session, server_id=server_id, stream=stream))


async def event_recorded(
    *, session: AsyncSession, server: Server, stream: str, trigger: WebhookTrigger, payload: WebhookPayload, first_open: bool = True
) -> None:
    """Queue a Delivery, SubscriptionChange, Open or Click webhook. `first_open` is False for a
    recipient's later opens, which hooks with `PostFirstOpenOnly` do not get."""
    rows = []
    for hook in await repository.stream_webhooks(session=session, server_id=server.id, stream=stream):
        setting = hook.triggers.get(trigger, {})
        if setting.get("Enabled") and (first_open or not (trigger is WebhookTrigger.OPEN and setting.get("PostFirstOpenOnly"))):
            rows.append(_target(server_id=server.id, record_type=trigger, url=hook.url, payload=payload, hook=hook))
    legacy = {
        WebhookTrigger.DELIVERY: server.delivery_hook_url,
        WebhookTrigger.OPEN: server.open_hook_url if first_open or not server.post_first_open_only else "",
        WebhookTrigger.CLICK: server.click_hook_url,
    }.get(trigger)
    if legacy:
        rows.append(_target(server_id=server.id, record_type=trigger, url=legacy, payload=payload))
    await repository.enqueue(session=session, rows=rows)


# --- the /webhooks API ------------------------------------------------------------------------


def merge_triggers(current: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    merged = {name: dict(current.get(name, default)) for name, default in TRIGGERS.items()}
    for name, values in (given or {}).items():
        if name not in TRIGGERS or not isinstance(values, dict):
            raise PostmarkError(ErrorCode.WEBHOOK_VALUE_INVALID, f"Invalid trigger '{name}'.")
        for key, value in values.items():
            if key not in TRIGGERS[name] or not isinstance(value, bool):
                raise PostmarkError(ErrorCode.WEBHOOK_VALUE_INVALID, f"Invalid value for {name}.{key}.")
            merged[name][key] = value
    return merged


async def check_url(url: str | None, *, url_guard: UrlGuard) -> str:
    url = (url or "").strip()
    if not url or not valid_hook_url(url):
        raise PostmarkError(ErrorCode.WEBHOOK_URL_INVALID, "The webhook Url is missing or invalid.")
    refusal = await url_guard.refusal(url)
    if refusal is not None:
        raise PostmarkError(
            ErrorCode.WEBHOOK_URL_INVALID, f"The webhook Url is not allowed: {refusal}. Webhooks may only reach public addresses."
        )
    return url


def check_headers(headers: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    cleaned = []
    for header in headers or []:
        name, value = str(header.get("Name") or ""), str(header.get("Value") or "")
        if not HEADER_NAME.match(name) or any(c in value for c in "\r\n\x00"):
            raise PostmarkError(ErrorCode.WEBHOOK_HEADER_INVALID, f"Invalid HttpHeaders entry '{name}'.")
        cleaned.append({"Name": name, "Value": value})
    return cleaned


async def get_webhook_or_raise(*, session: AsyncSession, server_id: int, webhook_id: int) -> Webhook:
    hook = await repository.get_webhook(session=session, server_id=server_id, webhook_id=webhook_id)
    if hook is None:
        raise NotFound(ErrorCode.WEBHOOK_NOT_FOUND, f"Webhook {webhook_id} was not found.")
    return hook


async def create_webhook(*, session: AsyncSession, server: Server, data: WebhookWrite, url_guard: UrlGuard) -> Webhook:
    stream_id = (data.MessageStream or DEFAULT_MESSAGE_STREAM).lower()
    stream = await streams.get_stream(session=session, server_id=server.id, stream_id=stream_id)
    if stream is None:
        raise PostmarkError(ErrorCode.STREAM_NOT_FOUND_BY_ID, f"The message stream '{stream_id}' was not found.")
    if stream.archived_at is not None:
        raise PostmarkError(ErrorCode.WEBHOOK_STREAM_ARCHIVED, f"The message stream '{stream_id}' is archived.")
    if stream.stream_type == StreamType.INBOUND:
        raise PostmarkError(ErrorCode.WEBHOOK_INBOUND_STREAM, "Webhooks cannot be added to an inbound stream; use InboundHookUrl.")
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


async def edit_webhook(*, session: AsyncSession, hook: Webhook, data: WebhookWrite, url_guard: UrlGuard) -> Webhook:
    """Change the given fields; every value is checked before any is applied."""
    if data.MessageStream is not None and data.MessageStream.lower() != hook.message_stream:
        raise PostmarkError(ErrorCode.WEBHOOK_STREAM_CANNOT_CHANGE, "The MessageStream of a webhook cannot be changed.")
    url = await check_url(data.Url, url_guard=url_guard) if data.Url is not None else hook.url
    headers = check_headers([h.model_dump() for h in data.HttpHeaders]) if data.HttpHeaders is not None else hook.http_headers
    triggers = merge_triggers(hook.triggers, data.Triggers) if data.Triggers is not None else hook.triggers
    hook.url, hook.http_headers, hook.triggers = url, headers, triggers
    if data.HttpAuth is not None:
        hook.http_auth_username, hook.http_auth_password = data.HttpAuth.Username or "", data.HttpAuth.Password or ""
    await session.flush()
    return hook


async def delete_webhook(*, session: AsyncSession, hook: Webhook) -> None:
    await repository.delete_webhook(session=session, hook=hook)


TEST_TRIGGERS = ("Bounce", "SpamComplaint", "Delivery", "SubscriptionChange")


def sample_payload(
    *, trigger: str, server_id: int, stream: str
) -> BounceWebhook | SpamComplaintWebhook | DeliveryWebhook | SubscriptionChangeWebhook:
    """A made-up event of the trigger's type, shaped exactly like a real one (built by the same functions)."""
    now = datetime.now(UTC)
    message_id = str(uuid.UUID(int=0))
    if trigger in ("Bounce", "SpamComplaint"):
        bounce_type = BounceType.SPAM_COMPLAINT if trigger == "SpamComplaint" else BounceType.HARD_BOUNCE
        info = BOUNCE_TYPES[bounce_type]
        sample = Bounce(
            id=0,
            server_id=server_id,
            message_id=uuid.UUID(int=0),
            message_stream=stream,
            type=bounce_type,
            type_code=info.code,
            email="john@example.com",
            from_email="sender@example.com",
            subject="Test subject",
            tag="Test",
            details="Test bounce details",
            inactive=info.deactivates,
            can_activate=info.can_activate,
            dump=None,
            content=None,
            bounced_at=now,
        )
        return payloads.bounce_payload(sample, metadata={"example": "value"}, include_content=False)
    if trigger == "Delivery":
        return payloads.delivery_payload(
            server_id=server_id,
            stream=stream,
            message_id=message_id,
            recipient="john@example.com",
            tag="Test",
            delivered_at=now,
            details="Test delivery webhook details",
            metadata={"example": "value"},
        )
    if trigger == "SubscriptionChange":
        return payloads.subscription_change_payload(
            server_id=server_id,
            stream=stream,
            message_id=message_id,
            recipient="john@example.com",
            changed_at=now,
            origin=SuppressionOrigin.RECIPIENT,
            suppress=True,
            reason=SuppressionReason.HARD_BOUNCE,
            tag="Test",
            metadata={"example": "value"},
        )
    raise PostmarkError(ErrorCode.WEBHOOK_VALUE_INVALID, f"No test event for trigger '{trigger}'.")


async def send_test(*, session: AsyncSession, server: Server, hook: Webhook, trigger: str) -> None:
    """Queue a sample event for this webhook in the outbox; the worker POSTs it like any other."""
    payload = sample_payload(trigger=trigger, server_id=server.id, stream=hook.message_stream)
    await repository.enqueue(
        session=session, rows=[_target(server_id=server.id, record_type=WebhookTrigger(trigger), url=hook.url, payload=payload, hook=hook)]
    )


async def recent_deliveries(*, session: AsyncSession, server_id: int, hook: Webhook, limit: int = 20) -> list[WebhookDelivery]:
    return await repository.recent_deliveries(session=session, server_id=server_id, url=hook.url, limit=limit)


async def deliveries_about(
    *, session: AsyncSession, server_id: int, record_type: str, origin_id: str, limit: int = 20
) -> list[WebhookDelivery]:
    """The POSTs queued by `enqueue_post` about one record (say an inbound message), newest first:
    one row per POST, with its attempts, last HTTP status or error, and when it is next tried."""
    return await repository.deliveries_about(
        session=session, server_id=server_id, record_type=record_type, origin_id=origin_id, limit=limit
    )


def _invalid(message: str) -> PostmarkError:
    return PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, message)


@dataclass(frozen=True, slots=True)
class Rotated:
    secret: str
    previous_valid_until: datetime


async def rotate_secret(*, session: AsyncSession, hook: Webhook, overlap_seconds: int, server_secret: str) -> Rotated:
    """Give the webhook a new signing key; the one it signed with so far (its own, or the server's)
    signs too until the overlap ends, so a receiver can switch keys without dropping a request."""
    if not 0 <= overlap_seconds <= MAX_SECRET_OVERLAP_SECONDS:
        raise _invalid(f"'OverlapSeconds' must be between 0 and {MAX_SECRET_OVERLAP_SECONDS} (7 days).")
    until = datetime.now(UTC) + timedelta(seconds=overlap_seconds)
    hook.previous_secret, hook.previous_secret_until = hook.secret or server_secret, until
    hook.secret = secrets.token_urlsafe(32)
    await session.flush()
    return Rotated(secret=hook.secret, previous_valid_until=until)


async def replay(*, session: AsyncSession, hook: Webhook, delivery_id: int | None, since: datetime | None, until: datetime | None) -> int:
    """Send this webhook's past POSTs again (beyond Postmark): one delivery by id, or every one of a
    time range of at most 7 days (at most MAX_REPLAY of them). The payloads are the ones first sent."""
    if delivery_id is None:
        if since is None or until is None:
            raise _invalid("Give 'DeliveryID', or both 'From' and 'To' (ISO 8601 with an offset).")
        if since.tzinfo is None or until.tzinfo is None:
            raise _invalid("'From' and 'To' need a UTC offset (for example 2026-12-01T00:00:00Z).")
        if not since < until <= since + timedelta(days=7):
            raise _invalid("'From' must be before 'To', at most 7 days apart.")
    count = await repository.replay(session=session, hook=hook, delivery_id=delivery_id, since=since, until=until, limit=MAX_REPLAY)
    if delivery_id is not None and count == 0:
        raise _invalid(f"This webhook has no delivery {delivery_id} to replay.")
    return count


async def list_webhooks(*, session: AsyncSession, server_id: int, stream: str | None) -> list[Webhook]:
    return await repository.list_webhooks(session=session, server_id=server_id, stream=stream.lower() if stream else None)


async def forget_address(*, session: AsyncSession, email: str, limit: int) -> int:
    """A data removal: delete up to `limit` webhook events, sent or waiting, whose payload names the
    address (a waiting one is then never sent); returns how many."""
    return await repository.delete_deliveries_mentioning(session=session, pattern=postgres_pattern(email), limit=limit)


async def purge_finished(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Retention: one batch of the server's sent or given-up webhook requests older than `days`."""
    return await repository.delete_finished(session=session, server_id=server_id, days=days, limit=limit)
