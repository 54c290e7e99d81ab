from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import BulkStatus


class BulkRequest(CreatedAtMixin, Base):
    """A Bulk API request (`POST /email/bulk`): the shared content, and how far the worker has expanded it.

    Its entries (`bulk_entries`) become messages in the worker, a bounded batch per transaction; `position`
    is the last entry expanded, and it moves in the same transaction as the messages it produced.
    """

    __tablename__ = "bulk_requests"
    __table_args__ = (
        Index("ix_bulk_requests_due", "progressed_at", postgresql_where=text("status <> 'Completed'")),
        Index("ix_bulk_requests_server_id_created_at", "server_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    status: Mapped[BulkStatus] = mapped_column(StrEnumType(BulkStatus, 12), doc="Accepted, Processing or Completed")
    message_stream: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB, doc="The request without Messages, as sent (absent keys left out)")
    total: Mapped[int] = mapped_column(doc="Entries in Messages")
    position: Mapped[int] = mapped_column(default=0, doc="Entries 1..position are expanded")
    released: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    progressed_at: Mapped[datetime] = mapped_column(doc="Last batch (or submission): the least recently served request goes next")
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class BulkEntry(Base):
    """One `Messages[]` entry of a bulk request, waiting to be expanded; deleted once it is."""

    __tablename__ = "bulk_entries"

    bulk_request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bulk_requests.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, doc="1-based, in request order")
    entry: Mapped[dict[str, Any]] = mapped_column(JSONB)
