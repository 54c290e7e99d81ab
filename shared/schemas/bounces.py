"""Bounces and delivery statistics."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireResponse


class Bounce(WireResponse):
    RecordType: str = "Bounce"
    ID: int
    Type: str
    TypeCode: int
    Name: str
    Tag: str
    MessageID: str
    ServerID: int
    MessageStream: str
    Description: str
    Details: str
    Email: str
    From: str
    BouncedAt: str
    DumpAvailable: bool
    Inactive: bool
    CanActivate: bool
    Subject: str
    Content: str | None = Field(default=None, description="Only on a single bounce, activate and webhooks")


class BounceList(WireResponse):
    TotalCount: int
    Bounces: list[Bounce]


class BounceDump(WireResponse):
    Body: str


class BounceActivation(WireResponse):
    Message: str
    Bounce: Bounce


class BounceCount(WireResponse):
    Type: str | None = None
    Name: str
    Count: int


class DeliveryStats(WireResponse):
    InactiveMails: int
    Bounces: list[BounceCount]
