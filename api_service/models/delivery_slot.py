from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class DeliverySlot(Base):
    """One open (or opening) SMTP connection to a destination, held by one worker: the count of live
    slots is what bounds a destination's parallel connections across every worker. The lease is
    extended while the worker lives; a dead worker's slots lapse."""

    __tablename__ = "delivery_slots"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    destination: Mapped[str] = mapped_column(String(200), index=True)
    holder: Mapped[uuid.UUID] = mapped_column(doc="The worker (its transport) that holds the slot")
    source_ip: Mapped[str] = mapped_column(String(45), default="")
    lease_until: Mapped[datetime]
