from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class SenderSignature(CreatedAtMixin, Base):
    """One From address the account may send from, once confirmed (the link mailed to it, or SENDER_AUTO_CONFIRM)."""

    __tablename__ = "sender_signatures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, doc="Lower-cased")
    domain: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    reply_to_email: Mapped[str] = mapped_column(String(255), default="")
    return_path_domain: Mapped[str] = mapped_column(String(255), default="")
    confirmation_personal_note: Mapped[str] = mapped_column(String(400), default="")
    confirmed: Mapped[bool] = mapped_column(default=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    confirmation_token_sha256: Mapped[str | None] = mapped_column(
        String(64), unique=True, default=None, doc="SHA-256 of the token in the last confirmation link; None once used"
    )
    confirmation_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    spf_verified: Mapped[bool] = mapped_column(default=False)
