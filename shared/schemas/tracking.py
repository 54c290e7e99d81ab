"""Opens and clicks (`/messages/outbound/opens`, `/clicks`), shaped like their webhooks."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireResponse


class ClientDetails(WireResponse):
    Name: str
    Company: str
    Family: str


class ReaderEvent(WireResponse):
    MessageStream: str
    Client: ClientDetails
    OS: ClientDetails
    Platform: str = Field(description="Desktop, Mobile, WebMail or Unknown")
    UserAgent: str
    Geo: dict[str, str] = Field(description="Only IP: Postgate ships no GeoIP database")
    MessageID: str
    ReceivedAt: str
    Tag: str
    Recipient: str
    Metadata: dict[str, str]


class OpenEvent(ReaderEvent):
    RecordType: str = "Open"
    FirstOpen: bool
    ReadSeconds: int = Field(description="Always 0: Postgate does not measure read time")


class ClickEvent(ReaderEvent):
    RecordType: str = "Click"
    ClickLocation: str = Field(description="HTML or Text")
    OriginalLink: str


class OpenList(WireResponse):
    TotalCount: int
    Opens: list[OpenEvent]


class ClickList(WireResponse):
    TotalCount: int
    Clicks: list[ClickEvent]
