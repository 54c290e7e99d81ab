from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class ConsolePasskey(CreatedAtMixin, Base):
    """A WebAuthn credential (passkey or security key) registered as a user's second factor."""

    __tablename__ = "console_passkeys"

    credential_id: Mapped[str] = mapped_column(String(512), primary_key=True, doc="base64url")
    username: Mapped[str] = mapped_column(String(64), ForeignKey("console_users.username", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[bytes] = mapped_column(LargeBinary, doc="COSE key")
    sign_count: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[datetime | None]
