"""The Message Streams API."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class SubscriptionConfig(WireModel):
    UnsubscribeHandlingType: str | None = Field(default=None, description="None, Postmark or Custom")


class StreamCreate(WireModel):
    """A new stream: `ID`, `Name` and `MessageStreamType` (Transactional or Broadcasts) are required."""

    ID: str | None = Field(default=None, description="Starts with a letter; lower-case letters, digits, _ and -; at most 30")
    Name: str | None = Field(default=None, description="At most 100 characters")
    MessageStreamType: str | None = Field(default=None, description="Transactional or Broadcasts")
    Description: str | None = Field(default=None, description="At most 1000 characters, no HTML")
    SubscriptionManagementConfiguration: SubscriptionConfig | None = None

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "ID": "newsletter",
                    "Name": "Newsletter",
                    "MessageStreamType": "Broadcasts",
                    "Description": "Monthly news",
                    "SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "Postmark"},
                }
            ]
        }
    }


class StreamEdit(WireModel):
    """Any of a stream's editable fields."""

    Name: str | None = None
    Description: str | None = None
    SubscriptionManagementConfiguration: SubscriptionConfig | None = None
    PauseOnComplaints: bool | None = Field(
        default=None, description="Beyond Postmark: pause the stream when its complaint rate passes the line"
    )
    Paused: bool | None = Field(default=None, description="Beyond Postmark: false resumes a paused stream, true pauses it")

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [{"Name": "Renamed", "Description": "Edited"}]}}


class SubscriptionManagement(WireResponse):
    UnsubscribeHandlingType: str


class MessageStream(WireResponse):
    """A message stream as Postmark shows it."""

    ID: str
    ServerID: int
    Name: str
    Description: str | None
    MessageStreamType: str = Field(description="Transactional, Broadcasts or Inbound")
    CreatedAt: str
    UpdatedAt: str | None
    ArchivedAt: str | None
    ExpectedPurgeDate: str | None
    SubscriptionManagementConfiguration: SubscriptionManagement
    PauseOnComplaints: bool = Field(default=True, description="Beyond Postmark: paused when its spam complaint rate passes the line")
    PausedAt: str | None = Field(default=None, description="Beyond Postmark: since when it refuses new mail")
    PausedReason: str = Field(default="", description="Beyond Postmark: why it is paused")


class MessageStreamList(WireResponse):
    MessageStreams: list[MessageStream]
    TotalCount: int


class StreamArchived(WireResponse):
    ID: str
    ServerID: int
    ExpectedPurgeDate: str
