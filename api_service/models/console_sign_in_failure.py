from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class ConsoleSignInFailure(Base):
    """Failed console sign-ins of one user name from one client address: how many in a row, the
    last one, and until when that pair waits before its next try (progressive delays). Keyed by
    the pair, so a stranger's failures never hold back the account owner at another address."""

    __tablename__ = "console_sign_in_failures"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_ip: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime] = mapped_column(index=True)
    locked_until: Mapped[datetime]
