from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class DeliveryIpDay(Base):
    """Messages a source IP sent to a provider on one (UTC) day: what its warm-up allowance is
    counted against."""

    __tablename__ = "delivery_ip_days"

    source_ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)
