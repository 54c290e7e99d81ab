from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class ConsoleInvitation(CreatedAtMixin, Base):
    """A mailed invitation link of one user; only the SHA-256 of its token is kept. Used once."""

    __tablename__ = "console_invitations"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("console_users.username", ondelete="CASCADE"), index=True)
    invited_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
