from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType


class RecipientStatus(StrEnum):
    """Where one recipient of a message is in the delivery queue."""

    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCED = "bounced"


class MessageRecipient(CreatedAtMixin, Base):
    """One envelope recipient of a message; also the delivery queue row."""

    __tablename__ = "message_recipients"
    __table_args__ = (
        Index(
            "ix_message_recipients_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'deferred')"),
        ),
        # The other half of a claim: rows whose worker went silent. Without it, the claim's
        # expired-lease branch scans every delivered row on every poll.
        Index("ix_message_recipients_leased", "lease_until", postgresql_where=text("status = 'sending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(3), doc="to, cc or bcc")
    status: Mapped[RecipientStatus] = mapped_column(StrEnumType(RecipientStatus, 20), default=RecipientStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(default=None, doc="Which claim holds the row; every update is fenced by it")
    last_response: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
