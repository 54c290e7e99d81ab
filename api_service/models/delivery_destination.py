from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, utcnow


class DeliveryDestination(Base):
    """What the workers have learned about one destination (a provider or an MX host set, or the
    relay) and its shared rate buckets; the configured limits live in the policy (`delivery.policy`).

    Every admission locks the row (`SELECT … FOR UPDATE`), so workers take its rate tokens and
    connection slots one at a time."""

    __tablename__ = "delivery_destinations"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    connections: Mapped[int] = mapped_column(Integer, doc="Parallel connections allowed now (learned, at most the policy's)")
    rate_factor: Mapped[float] = mapped_column(Float, default=1.0, doc="Share of the policy's rates allowed now (learned)")
    successes: Mapped[int] = mapped_column(Integer, default=0, doc="Deliveries since the limits last changed")
    throttles: Mapped[int] = mapped_column(Integer, default=0, doc="Throttling replies in a row, without a delivery between")
    throttled_at: Mapped[datetime | None] = mapped_column(default=None)
    suspended_until: Mapped[datetime | None] = mapped_column(default=None, doc="Backing off: nothing is sent before this")
    paused_until: Mapped[datetime | None] = mapped_column(default=None, doc="Out of rate or warm-up allowance until this")
    tat_second_us: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="GCRA state of the per-second rate")
    tat_minute_us: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="GCRA state of the per-minute rate")
    tat_hour_us: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="GCRA state of the per-hour rate")
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    throttled: Mapped[int] = mapped_column(BigInteger, default=0)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
