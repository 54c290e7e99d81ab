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
    Geo: dict[str, str] = Field(
        description="CountryISOCode, Country, RegionISOCode, Region, City, Coords and IP, as far as the GeoIP database on the server knows"
    )
    MessageID: str
    ReceivedAt: str
    Tag: str
    Recipient: str
    Metadata: dict[str, str]
    Machine: bool = Field(default=False, description="Beyond Postmark: a privacy proxy or security scanner, not a person")
    MachineReason: str = Field(default="", description="Beyond Postmark: which rule of api_service/tracking/machines.toml said so")


class OpenEvent(ReaderEvent):
    RecordType: str = "Open"
    FirstOpen: bool
    ReadSeconds: int = Field(description="Always 0: Postgate does not measure read time (README: ReadSeconds)")


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
