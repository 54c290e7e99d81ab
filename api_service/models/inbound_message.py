from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import InboundStatus


class InboundMessage(CreatedAtMixin, Base):
    """A message received for one inbound address of a server; `created_at` is when it arrived.

    `details` is the parsed Postmark inbound payload without attachment content (the API never
    returns it); the payload POSTed to the hook is parsed again from `raw_mime`.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_server_id_created_at", "server_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    message_stream: Mapped[str] = mapped_column(String(30))
    status: Mapped[InboundStatus] = mapped_column(StrEnumType(InboundStatus, 20), doc="Queued, Processed, Blocked, Failed or Scheduled")
    blocked_reason: Mapped[str] = mapped_column(Text, default="")
    envelope_from: Mapped[str] = mapped_column(Text, default="")
    original_recipient: Mapped[str] = mapped_column(Text)
    from_email: Mapped[str] = mapped_column(Text, default="")
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, doc="To, Cc and Bcc addresses and the original recipient")
    subject: Mapped[str] = mapped_column(Text, default="")
    mailbox_hash: Mapped[str] = mapped_column(Text, default="")
    tag: Mapped[str] = mapped_column(Text, default="")
    spam_score: Mapped[float | None] = mapped_column(Float, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    raw_mime: Mapped[bytes] = mapped_column(LargeBinary)
