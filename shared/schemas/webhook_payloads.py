"""Postmark's webhook payloads: the JSON POSTed for a Delivery, Bounce, SpamComplaint, Open, Click or
SubscriptionChange, told apart by `RecordType`.

Key names and order follow Postmark's documented examples and what Postgate has always sent; a
field that may be null is sent as null, except a bounce's `Content`, which is there only when the
webhook asks for content. Serialise with `event_json` so every sender writes the same bytes.
Inbound mail has its own payload (`shared.schemas.inbound.InboundMessage`, no `RecordType`); the
outbox carries both (`OutboxPayload`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, TypeAdapter

from shared.constants import BounceType, ClickLocation, Platform, SuppressionOrigin, SuppressionReason
from shared.schemas.base import WireResponse, format_timestamp
from shared.schemas.inbound import InboundMessage
from shared.schemas.tracking import ClientDetails

# Postmark's timestamps: ISO 8601 in UTC with a `Z`, microseconds when there are any.
Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]


class _BounceFields(WireResponse):
    """What a Bounce and a SpamComplaint webhook both carry (the second is a bounce of type SpamComplaint)."""

    RecordType: str
    ID: int
    Type: BounceType
    TypeCode: int
    Name: str = Field(description="The bounce type's human name, e.g. 'Hard bounce'")
    Tag: str
    MessageID: str = Field(description="The bounced message's id; empty when the bounce matched no message")
    Metadata: dict[str, str]
    ServerID: int
    MessageStream: str
    Description: str
    Details: str
    Email: str
    From: str
    BouncedAt: Timestamp
    DumpAvailable: bool
    Inactive: bool
    CanActivate: bool
    Subject: str
    Content: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The raw bounce; only when the webhook has IncludeContent",
    )


class BounceWebhook(_BounceFields):
    """A message bounced (every bounce type but SpamComplaint)."""

    RecordType: Literal["Bounce"] = "Bounce"


class SpamComplaintWebhook(_BounceFields):
    """A recipient marked a message as spam."""

    RecordType: Literal["SpamComplaint"] = "SpamComplaint"


class DeliveryWebhook(WireResponse):
    """The receiving server accepted a message for one recipient."""

    RecordType: Literal["Delivery"] = "Delivery"
    ServerID: int
    MessageStream: str
    MessageID: str
    Recipient: str
    Tag: str
    DeliveredAt: Timestamp
    Details: str = Field(description="The receiving server's reply")
    Metadata: dict[str, str]


class SubscriptionChangeWebhook(WireResponse):
    """A recipient was suppressed (unsubscribe, hard bounce, complaint, by hand) or reactivated."""

    RecordType: Literal["SubscriptionChange"] = "SubscriptionChange"
    MessageID: str | None = Field(description="The message that led to the change; null when none did")
    ServerID: int
    MessageStream: str
    ChangedAt: Timestamp
    Recipient: str
    Origin: SuppressionOrigin
    SuppressSending: bool = Field(description="True when the recipient is now suppressed, False when reactivated")
    SuppressionReason: SuppressionReason | None
    Tag: str
    Metadata: dict[str, str]


class OpenWebhook(WireResponse):
    """A recipient opened a message (the tracking pixel was fetched)."""

    RecordType: Literal["Open"] = "Open"
    FirstOpen: bool
    ReadSeconds: int = Field(description="Always 0: Postgate does not measure read time (README: ReadSeconds)")
    MessageStream: str
    Client: ClientDetails
    OS: ClientDetails
    Platform: Platform
    UserAgent: str
    Geo: dict[str, str] = Field(
        description="CountryISOCode, Country, RegionISOCode, Region, City, Coords and IP, as far as the GeoIP database on the server knows"
    )
    MessageID: str
    ReceivedAt: Timestamp
    Tag: str
    Recipient: str
    Metadata: dict[str, str]
    Machine: bool = Field(default=False, description="Beyond Postmark: a privacy proxy or security scanner fetched it, not a person")
    MachineReason: str = Field(default="", description="Beyond Postmark: which rule said so (api_service/tracking/machines.toml)")


class ClickWebhook(WireResponse):
    """A recipient followed a tracked link (one webhook per link and recipient)."""

    RecordType: Literal["Click"] = "Click"
    ClickLocation: ClickLocation
    OriginalLink: str
    MessageStream: str
    Client: ClientDetails
    OS: ClientDetails
    Platform: Platform
    UserAgent: str
    Geo: dict[str, str] = Field(
        description="CountryISOCode, Country, RegionISOCode, Region, City, Coords and IP, as far as the GeoIP database on the server knows"
    )
    MessageID: str
    ReceivedAt: Timestamp
    Tag: str
    Recipient: str
    Metadata: dict[str, str]
    Machine: bool = Field(default=False, description="Beyond Postmark: a security scanner or link checker followed it, not a person")
    MachineReason: str = Field(default="", description="Beyond Postmark: which rule said so (api_service/tracking/machines.toml)")


class StreamPausedWebhook(WireResponse):
    """Beyond Postmark: a stream was paused because its spam complaint rate passed the line (sent to the
    stream's webhooks that take SpamComplaint)."""

    RecordType: Literal["StreamPaused"] = "StreamPaused"
    ServerID: int
    MessageStream: str
    PausedAt: Timestamp
    Reason: str
    SpamComplaints: int
    Recipients: int


WebhookPayload = Annotated[
    BounceWebhook | SpamComplaintWebhook | DeliveryWebhook | SubscriptionChangeWebhook | OpenWebhook | ClickWebhook,
    Field(discriminator="RecordType"),
]
"""Any event webhook, told apart by `RecordType`."""

WEBHOOK_PAYLOAD: TypeAdapter[WebhookPayload] = TypeAdapter(WebhookPayload)

OutboxPayload = (
    BounceWebhook
    | SpamComplaintWebhook
    | DeliveryWebhook
    | SubscriptionChangeWebhook
    | OpenWebhook
    | ClickWebhook
    | InboundMessage
    | StreamPausedWebhook
)
"""What the webhook outbox POSTs: an event webhook or an inbound message."""


def event_json(payload: OutboxPayload) -> dict[str, Any]:
    """The JSON body of a POST. An inbound message leaves out its unset `RawEmail` (its only optional
    field); an event webhook keeps its nulls, as Postmark sends them."""
    return payload.model_dump(mode="json", by_alias=True, exclude_none=isinstance(payload, InboundMessage))
