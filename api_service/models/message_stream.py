from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import StreamType


class MessageStream(CreatedAtMixin, Base):
    """A server's message stream; every server starts with outbound, inbound and broadcast."""

    __tablename__ = "message_streams"

    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    stream_type: Mapped[StreamType] = mapped_column(StrEnumType(StreamType, 20))
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    unsubscribe_handling: Mapped[str] = mapped_column(String(10), default="None", doc="None, Postmark or Custom")
    pause_on_complaints: Mapped[bool] = mapped_column(
        default=True, doc="Paused when its 7-day spam complaint rate passes COMPLAINT_PAUSE_RATE"
    )
    paused_at: Mapped[datetime | None] = mapped_column(default=None, doc="Refuses new mail while set")
    paused_reason: Mapped[str] = mapped_column(Text, default="")
