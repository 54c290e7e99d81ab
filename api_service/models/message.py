from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, ForeignKey, Index, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import MessageStatus, TrackLinks


class MessageSource(StrEnum):
    """The entry point a message came in by."""

    API = "api"
    SMTP = "smtp"


class Message(CreatedAtMixin, Base):
    """An accepted outbound message with its raw MIME; `created_at` is Postmark's ReceivedAt."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_server_id_created_at", "server_id", "created_at"),
        # A tag search, newest first, without walking past the other tags' messages.
        Index("ix_messages_server_id_tag_created_at", "server_id", "tag", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    message_stream: Mapped[str] = mapped_column(String(30))
    source: Mapped[MessageSource] = mapped_column(StrEnumType(MessageSource, 10), doc="api or smtp")
    status: Mapped[MessageStatus] = mapped_column(StrEnumType(MessageStatus, 20), default=MessageStatus.QUEUED)
    from_header: Mapped[str] = mapped_column(Text)
    from_email: Mapped[str] = mapped_column(String(255), index=True)
    envelope_from: Mapped[str] = mapped_column(String(255), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    tag: Mapped[str] = mapped_column(String(1000), default="")
    to: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    cc: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    bcc: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONB, default=dict)
    attachments: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    track_opens: Mapped[bool] = mapped_column(default=False)
    track_links: Mapped[TrackLinks] = mapped_column(StrEnumType(TrackLinks, 20), default=TrackLinks.NONE)
    sandboxed: Mapped[bool] = mapped_column(default=False)
    list_unsubscribe: Mapped[bool] = mapped_column(default=False, doc="Sent on a Broadcasts stream with Postmark unsubscribe handling")
    tracked_links: Mapped[int] = mapped_column(default=0, doc="Links rewritten for click tracking in each recipient's copy")
    raw_mime: Mapped[bytes] = mapped_column(LargeBinary)
    send_at: Mapped[datetime | None] = mapped_column(default=None, doc="Scheduled sending: when its recipients are released")


def recipients_text(recipients: ColumnElement[list[str]] | InstrumentedAttribute[list[str]]) -> ColumnElement[str]:
    """The recipients as the `recipient` search matches them: one string, commas between. An
    IMMUTABLE SQL function (migration 0023) so that it can be indexed; `array_to_string` is STABLE."""
    joined: ColumnElement[str] = func.recipients_search_text(recipients, type_=Text())
    return joined


# The substring searches (`x ILIKE '%…%'`, what `icontains` compiles to on PostgreSQL) are served by
# trigram indexes on exactly the expressions they compare (pg_trgm, migration 0023).
Index(
    "ix_messages_recipients_trgm",
    recipients_text(Message.recipients).label("recipients_text"),
    postgresql_using="gin",
    postgresql_ops={"recipients_text": "gin_trgm_ops"},
)
Index(
    "ix_messages_subject_trgm",
    Message.subject,
    postgresql_using="gin",
    postgresql_ops={"subject": "gin_trgm_ops"},
)
