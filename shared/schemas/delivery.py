"""`GET /delivery/destinations` (beyond Postmark): each destination's limits and what the workers learned."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class DeliveryDestination(BaseModel):
    """One destination: a provider (`google`), an MX host set (`mx:mx1.example.net,mx2.example.net`) or the relay."""

    Destination: str
    State: str  # open, throttled, full, paused (out of rate or warm-up allowance) or suspended
    Connections: int  # parallel connections allowed now (learned)
    MaxConnections: int  # the policy's cap
    OpenConnections: int
    MessagesPerConnection: int
    PerSecond: float | None
    PerMinute: float | None
    PerHour: float | None
    RateFactor: float  # share of the policy's rates allowed now (learned)
    SuspendedUntil: datetime | None
    PausedUntil: datetime | None
    ThrottledAt: datetime | None
    Delivered: int
    Throttled: int
    Queued: int
    Domains: int
    LastReply: str


class DeliveryDestinationList(BaseModel):
    TotalCount: int
    Destinations: list[DeliveryDestination]


class WarmupUse(BaseModel):
    """What a source IP sent to one provider today, and its warm-up allowance (None: no cap)."""

    Destination: str
    SentToday: int
    AllowanceToday: int | None


class SourceIpInfo(BaseModel):
    """One source IP of a pool: its HELO name and, while warming up, its day and use."""

    Address: str
    Pool: str
    Helo: str
    WarmupSince: str | None
    WarmupDay: int | None
    Today: list[WarmupUse]


class SourceIpList(BaseModel):
    TotalCount: int
    SourceIps: list[SourceIpInfo]
