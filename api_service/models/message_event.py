from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import MessageEventType


class MessageEvent(CreatedAtMixin, Base):
    """Something that happened to a message for one recipient (Delivered, Transient, Bounced …)."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    type: Mapped[MessageEventType] = mapped_column(StrEnumType(MessageEventType, 30))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
