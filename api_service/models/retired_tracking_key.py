from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class RetiredTrackingKey(Base):
    """The tracking secret of a deleted server, kept so the open, click and unsubscribe URLs of
    the mail it sent still open (a link keeps redirecting, nothing is recorded). One small row per
    deleted server; the server id is not reused (identity column)."""

    __tablename__ = "retired_tracking_keys"

    server_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tracking_secret: Mapped[str] = mapped_column(String(128))
    retired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
