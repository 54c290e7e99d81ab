from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class ConsoleRecoveryCode(CreatedAtMixin, Base):
    """A single-use two-factor recovery code of one user, kept as its SHA-256 (the code is random)."""

    __tablename__ = "console_recovery_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("console_users.username", ondelete="CASCADE"), index=True)
    code_sha256: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]
