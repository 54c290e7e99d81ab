"""Outbound message activity."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class EmailName(WireResponse):
    Email: str
    Name: str | None = None


class OutboundMessage(WireResponse):
    MessageID: str
    Tag: str
    MessageStream: str
    To: list[EmailName]
    Cc: list[EmailName]
    Bcc: list[EmailName]
    Recipients: list[str]
    ReceivedAt: str
    From: str
    Subject: str
    Attachments: list[str]
    Status: str = Field(description="Queued, Sent or Processed; beyond Postmark, Scheduled or Cancelled")
    TrackOpens: bool
    TrackLinks: str
    Metadata: dict[str, str]
    Sandboxed: bool
    SendAt: str | None = Field(default=None, description="Beyond Postmark: the release time of a scheduled message")


class MessageEvent(WireResponse):
    Recipient: str
    Type: str
    ReceivedAt: str
    Details: dict[str, Any]


class OutboundMessageDetails(OutboundMessage):
    TextBody: str
    HtmlBody: str
    Body: str
    MessageEvents: list[MessageEvent]


class OutboundMessageList(WireResponse):
    TotalCount: int
    Messages: list[OutboundMessage]


class MessageDump(WireResponse):
    Body: str


class ScheduleRequest(WireModel):
    """Beyond Postmark: `PUT /messages/outbound/{id}/schedule` moves a scheduled message's release."""

    SendAt: str | None = Field(default=None, description="ISO 8601 with an offset; at most 30 days ahead; a past time sends now")


class ScheduleResult(WireResponse):
    """Beyond Postmark: what became of a scheduled message."""

    ErrorCode: int = 0
    Message: str
    MessageID: str
    Status: str = Field(description="Scheduled (rescheduled) or Cancelled")
    SendAt: str | None = None
