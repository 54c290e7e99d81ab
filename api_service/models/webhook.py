from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class Webhook(CreatedAtMixin, Base):
    """A webhook of a server's message stream (Postmark's /webhooks)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    message_stream: Mapped[str] = mapped_column(String(30))
    http_auth_username: Mapped[str] = mapped_column(String(255), default="")
    http_auth_password: Mapped[str] = mapped_column(String(255), default="")
    http_headers: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    triggers: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    secret: Mapped[str | None] = mapped_column(
        String(128), default=None, doc="This webhook's own signing key once rotated; null: the server's WebhookSecret"
    )
    previous_secret: Mapped[str | None] = mapped_column(String(128), default=None, doc="The key before the last rotation")
    previous_secret_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=None, doc="Until when requests are signed with the previous key too"
    )
