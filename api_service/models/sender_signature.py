from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class SenderSignature(CreatedAtMixin, Base):
    """One From address the account may send from."""

    __tablename__ = "sender_signatures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True, doc="Lower-cased")
    domain: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    reply_to_email: Mapped[str] = mapped_column(String(255), default="")
    return_path_domain: Mapped[str] = mapped_column(String(255), default="")
    confirmation_personal_note: Mapped[str] = mapped_column(String(400), default="")
    confirmed: Mapped[bool] = mapped_column(default=True)
