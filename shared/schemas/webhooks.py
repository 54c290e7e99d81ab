"""The /webhooks API."""

from __future__ import annotations

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
