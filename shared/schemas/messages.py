"""Outbound message activity."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas.base import WireResponse


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
    Status: str = Field(description="Queued, Sent or Processed")
    TrackOpens: bool
    TrackLinks: str
    Metadata: dict[str, str]
    Sandboxed: bool


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
