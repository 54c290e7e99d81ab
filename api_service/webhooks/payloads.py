"""Postmark's webhook payloads (RecordType Bounce, SpamComplaint, Delivery, SubscriptionChange, Open, Click)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_service.models import Bounce, MessageClick, MessageOpen
from shared.constants import BOUNCE_TYPES, BounceType, WebhookTrigger
from shared.schemas.base import format_timestamp


def bounce_payload(bounce: Bounce, *, metadata: dict[str, str], include_content: bool, dump: bytes | None = None) -> dict[str, Any]:
    info = BOUNCE_TYPES[BounceType(bounce.type)]
    payload: dict[str, Any] = {
        "RecordType": (WebhookTrigger.SPAM_COMPLAINT if bounce.type == BounceType.SPAM_COMPLAINT.value else WebhookTrigger.BOUNCE).value,
        "ID": bounce.id,
        "Type": bounce.type,
        "TypeCode": bounce.type_code,
        "Name": info.name,
        "Tag": bounce.tag,
        "MessageID": str(bounce.message_id) if bounce.message_id else "",
        "Metadata": metadata,
        "ServerID": bounce.server_id,
        "MessageStream": bounce.message_stream,
        "Description": info.description,
        "Details": bounce.details,
        "Email": bounce.email,
        "From": bounce.from_email,
        "BouncedAt": format_timestamp(bounce.bounced_at),
        "DumpAvailable": dump is not None or bounce.dump is not None or bounce.dump_id is not None,
        "Inactive": bounce.inactive,
        "CanActivate": bounce.can_activate,
        "Subject": bounce.subject,
    }
    if include_content:
        payload["Content"] = bounce.content or (dump or bounce.dump or b"").decode("utf-8", "replace")
    return payload


def delivery_payload(
    *,
    server_id: int,
    stream: str,
    message_id: str,
    recipient: str,
    tag: str,
    delivered_at: datetime,
    details: str,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "RecordType": WebhookTrigger.DELIVERY.value,
        "ServerID": server_id,
        "MessageStream": stream,
        "MessageID": message_id,
        "Recipient": recipient,
        "Tag": tag,
        "DeliveredAt": format_timestamp(delivered_at),
        "Details": details,
        "Metadata": metadata,
    }


def subscription_change_payload(
    *,
    server_id: int,
    stream: str,
    message_id: str | None,
    recipient: str,
    changed_at: datetime,
    origin: str,
    suppress: bool,
    reason: str | None,
    tag: str,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "RecordType": WebhookTrigger.SUBSCRIPTION_CHANGE.value,
        "MessageID": message_id,
        "ServerID": server_id,
        "MessageStream": stream,
        "ChangedAt": format_timestamp(changed_at),
        "Recipient": recipient,
        "Origin": origin,
        "SuppressSending": suppress,
        "SuppressionReason": reason,
        "Tag": tag,
        "Metadata": metadata,
    }


def _reader_fields(row: MessageOpen | MessageClick) -> dict[str, Any]:
    return {
        "MessageStream": row.message_stream,
        "Client": {"Name": row.client_name, "Company": row.client_company, "Family": row.client_family},
        "OS": {"Name": row.os_name, "Company": row.os_company, "Family": row.os_family},
        "Platform": row.platform,
        "UserAgent": row.user_agent,
        # No GeoIP database ships with Postgate: only the address is known.
        "Geo": {"IP": row.ip} if row.ip else {},
        "MessageID": str(row.message_id),
        "ReceivedAt": format_timestamp(row.created_at),
        "Tag": row.tag,
        "Recipient": row.recipient,
    }


def open_payload(row: MessageOpen, *, metadata: dict[str, str]) -> dict[str, Any]:
    """An Open webhook, and an item of `/messages/outbound/opens`."""
    return {
        "RecordType": WebhookTrigger.OPEN.value,
        "FirstOpen": row.first_open,
        "ReadSeconds": row.read_seconds,
        **_reader_fields(row),
        "Metadata": metadata,
    }


def click_payload(row: MessageClick, *, metadata: dict[str, str]) -> dict[str, Any]:
    """A Click webhook, and an item of `/messages/outbound/clicks`."""
    return {
        "RecordType": WebhookTrigger.CLICK.value,
        "ClickLocation": row.click_location,
        "OriginalLink": row.original_link,
        **_reader_fields(row),
        "Metadata": metadata,
    }
