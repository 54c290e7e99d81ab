from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, utcnow


class ConsoleSignInFailure(Base):
    """One failed console sign-in, counted per client IP and per user name to throttle guessing."""

    __tablename__ = "console_sign_in_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_ip: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
