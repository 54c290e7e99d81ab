from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, StrEnumType, utcnow
from shared.constants import BounceType


class Bounce(Base):
    """A bounce (or spam complaint, or SMTP API error) for one recipient of a message."""

    __tablename__ = "bounces"
    __table_args__ = (Index("ix_bounces_server_id_bounced_at", "server_id", "bounced_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    message_stream: Mapped[str] = mapped_column(String(30))
    type: Mapped[BounceType] = mapped_column(StrEnumType(BounceType, 30))
    type_code: Mapped[int]
    email: Mapped[str] = mapped_column(String(320), index=True)
    from_email: Mapped[str] = mapped_column(String(255), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    tag: Mapped[str] = mapped_column(String(1000), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    inactive: Mapped[bool] = mapped_column(default=False)
    can_activate: Mapped[bool] = mapped_column(default=False)
    dump: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, doc="Raw message or DSN of bounces recorded before bounce_dumps")
    dump_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("bounce_dumps.id", ondelete="SET NULL"), index=True, default=None, doc="Raw message or DSN, for /dump"
    )
    content: Mapped[str | None] = mapped_column(Text, default=None)
    bounced_at: Mapped[datetime] = mapped_column(default=utcnow)


# `emailFilter` is a case-insensitive substring search: a trigram index on what it compares (migration 0023).
Index("ix_bounces_email_trgm", Bounce.email, postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"})
