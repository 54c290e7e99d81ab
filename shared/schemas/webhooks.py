"""The /webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class WebhookHttpAuth(WireModel):
    Username: str | None = None
    Password: str | None = None


class WebhookHttpHeader(WireModel):
    Name: str | None = None
    Value: str | None = None


class WebhookWrite(WireModel):
    """Create (Url and Triggers) or edit (any subset) a webhook."""

    Url: str | None = None
    MessageStream: str | None = Field(default=None, description="Defaults to outbound; cannot change after creation")
    HttpAuth: WebhookHttpAuth | None = None
    HttpHeaders: list[WebhookHttpHeader] | None = None
    Triggers: dict[str, dict[str, Any]] | None = None

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "Url": "https://example.com/postmark/webhook",
                    "MessageStream": "outbound",
                    "Triggers": {"Bounce": {"Enabled": True, "IncludeContent": False}, "Delivery": {"Enabled": True}},
                }
            ]
        }
    }


class Webhook(WireResponse):
    ID: int
    Url: str
    MessageStream: str
    HttpAuth: dict[str, str] | None
    HttpHeaders: list[dict[str, str]]
    Triggers: dict[str, dict[str, bool]]


class WebhookList(WireResponse):
    Webhooks: list[Webhook]


class WebhookSecretRotation(WireModel):
    """Beyond Postmark: give a webhook a new signing key (`POST /webhooks/{id}/secret`)."""

    OverlapSeconds: int = Field(
        default=86_400, description="How long requests are signed with the previous key too (0 to 604,800; default one day)"
    )


class WebhookSecret(WireResponse):
    """The new key, shown this once."""

    ID: int
    Secret: str
    PreviousSecretValidUntil: str = Field(description="Until then `X-Postgate-Signature` carries both signatures: v1=<new>,v1=<previous>")


class WebhookReplay(WireModel):
    """Beyond Postmark: send past deliveries again (`POST /webhooks/{id}/replay`): one, or a time range."""

    DeliveryID: int | None = Field(default=None, description="One delivery (the number in its X-PM-Webhook-Trace-Id, pg-<n>)")
    From: datetime | None = Field(default=None, description="Start of the range, ISO 8601 with an offset (inclusive)")
    To: datetime | None = Field(default=None, description="End of the range (exclusive), at most 7 days after From")

    model_config = WireModel.model_config | {
        "json_schema_extra": {"examples": [{"From": "2026-12-01T00:00:00Z", "To": "2026-12-02T00:00:00Z"}]}
    }


class WebhookReplayResult(WireResponse):
    ID: int
    Replayed: int = Field(description="Deliveries queued again (at most 10,000 per request)")
