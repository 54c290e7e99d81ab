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
