"""Data removal requests (account token)."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class DataRemovalRequest(WireModel):
    """Erase what is held about one recipient address."""

    RequestedBy: str | None = Field(default=None, description="Who asks: notified at this address when NotifyWhenCompleted")
    RequestedFor: str | None = Field(default=None, description="The address whose data is removed")
    NotifyWhenCompleted: bool = False

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [{"RequestedBy": "privacy@example.com", "RequestedFor": "someone@example.net", "NotifyWhenCompleted": False}]
        }
    }


class DataRemovalCounts(WireResponse):
    """Beyond Postmark: what the removal deleted or anonymised so far."""

    MessagesDeleted: int = 0
    MessagesAnonymised: int = 0
    BouncesDeleted: int = 0
    BouncesAnonymised: int = 0
    OpensAndClicksDeleted: int = 0
    SuppressionsDeleted: int = 0
    WebhookEventsDeleted: int = 0
    IdempotencyResponsesAnonymised: int = 0
    InboundMessagesDeleted: int = 0


class DataRemovalStatus(WireResponse):
    """A data removal request: `Status` is Pending until everything is removed, then Done."""

    ID: int
    Status: str
    CompletedAt: str | None = Field(default=None, description="Beyond Postmark: when it was done")
    Removed: DataRemovalCounts = Field(default_factory=DataRemovalCounts, description="Beyond Postmark")
