"""Postmark's webhook payloads built from the rows they are about (the shapes: shared.schemas.webhook_payloads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_service.models import Bounce, MessageClick, MessageOpen
from shared.constants import BOUNCE_TYPES, BounceType, SuppressionOrigin, SuppressionReason
from shared.schemas.tracking import ClientDetails
from shared.schemas.webhook_payloads import (
    BounceWebhook,
    ClickWebhook,
    DeliveryWebhook,
    OpenWebhook,
    SpamComplaintWebhook,
    SubscriptionChangeWebhook,
)


def bounce_payload(
    bounce: Bounce, *, metadata: dict[str, str], include_content: bool, dump: bytes | None = None
) -> BounceWebhook | SpamComplaintWebhook:
    """A Bounce webhook, or a SpamComplaint one for a bounce of that type."""
    bounce_type = BounceType(bounce.type)
    info = BOUNCE_TYPES[bounce_type]
    model = SpamComplaintWebhook if bounce_type is BounceType.SPAM_COMPLAINT else BounceWebhook
    return model(
        ID=bounce.id,
        Type=bounce_type,
        TypeCode=bounce.type_code,
        Name=info.name,
        Tag=bounce.tag,
        MessageID=str(bounce.message_id) if bounce.message_id else "",
        Metadata=metadata,
        ServerID=bounce.server_id,
        MessageStream=bounce.message_stream,
        Description=info.description,
        Details=bounce.details,
        Email=bounce.email,
        From=bounce.from_email,
        BouncedAt=bounce.bounced_at,
        DumpAvailable=dump is not None or bounce.dump is not None or bounce.dump_id is not None,
        Inactive=bounce.inactive,
        CanActivate=bounce.can_activate,
        Subject=bounce.subject,
        Content=(bounce.content or (dump or bounce.dump or b"").decode("utf-8", "replace")) if include_content else None,
    )


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
) -> DeliveryWebhook:
    return DeliveryWebhook(
        ServerID=server_id,
        MessageStream=stream,
        MessageID=message_id,
        Recipient=recipient,
        Tag=tag,
        DeliveredAt=delivered_at,
        Details=details,
        Metadata=metadata,
    )


def subscription_change_payload(
    *,
    server_id: int,
    stream: str,
    message_id: str | None,
    recipient: str,
    changed_at: datetime,
    origin: SuppressionOrigin,
    suppress: bool,
    reason: SuppressionReason | None,
    tag: str,
    metadata: dict[str, str],
) -> SubscriptionChangeWebhook:
    return SubscriptionChangeWebhook(
        MessageID=message_id,
        ServerID=server_id,
        MessageStream=stream,
        ChangedAt=changed_at,
        Recipient=recipient,
        Origin=origin,
        SuppressSending=suppress,
        SuppressionReason=reason,
        Tag=tag,
        Metadata=metadata,
    )


def _client(name: str, company: str, family: str) -> ClientDetails:
    return ClientDetails(Name=name, Company=company, Family=family)


def _reader(row: MessageOpen | MessageClick, metadata: dict[str, str]) -> dict[str, Any]:
    """What an Open and a Click say alike: the message, the reader's client, OS and address (the
    models fix the key order of each payload)."""
    return {
        "MessageStream": row.message_stream,
        "Client": _client(row.client_name, row.client_company, row.client_family),
        "OS": _client(row.os_name, row.os_company, row.os_family),
        "Platform": row.platform,
        "UserAgent": row.user_agent,
        "Geo": geo_of(row),
        "MessageID": str(row.message_id),
        "ReceivedAt": row.created_at,
        "Tag": row.tag,
        "Recipient": row.recipient,
        "Metadata": metadata,
        "Machine": row.machine,
        "MachineReason": row.machine_reason,
    }


def geo_of(row: MessageOpen | MessageClick) -> dict[str, str]:
    """Postmark's Geo, from the database on this machine (`core.geoip`): the fields it knows, and the IP."""
    fields = {
        "CountryISOCode": row.country_iso,
        "Country": row.country,
        "RegionISOCode": row.region_iso,
        "Region": row.region,
        "City": row.city,
        "Coords": row.coords,
        "IP": row.ip,
    }
    return {key: value for key, value in fields.items() if value}


def open_payload(row: MessageOpen, *, metadata: dict[str, str]) -> OpenWebhook:
    """An Open webhook, and an item of `/messages/outbound/opens`."""
    return OpenWebhook(FirstOpen=row.first_open, ReadSeconds=row.read_seconds, **_reader(row, metadata))


def click_payload(row: MessageClick, *, metadata: dict[str, str]) -> ClickWebhook:
    """A Click webhook, and an item of `/messages/outbound/clicks`."""
    return ClickWebhook(ClickLocation=row.click_location, OriginalLink=row.original_link, **_reader(row, metadata))
