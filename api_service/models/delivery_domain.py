from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, utcnow


class DeliveryDomain(Base):
    """A recipient domain's destination, as a worker last resolved it (its MX hosts → a provider or a
    host set): the claim reads it to leave out recipients whose destination has no room."""

    __tablename__ = "delivery_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    destination: Mapped[str] = mapped_column(String(200), index=True)
    resolved_at: Mapped[datetime] = mapped_column(default=utcnow)
