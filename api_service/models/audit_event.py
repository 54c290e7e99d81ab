from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, utcnow


class AuditEvent(Base):
    """One change (or failed sign-in): append-only, a trigger refuses UPDATE and DELETE except the
    retention purge (migration 0020)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(
        String(200), doc="user:<name>, token:<name>#<id>, account-token:<name>#<id>, account-token:ACCOUNT_TOKEN, shell:<os user>"
    )
    action: Mapped[str] = mapped_column(String(200), index=True)
    target_type: Mapped[str] = mapped_column(String(50), default="")
    target_id: Mapped[str] = mapped_column(String(200), default="")
    server_id: Mapped[int | None] = mapped_column(
        BigInteger, default=None, index=True, doc="No foreign key: the record outlives the server"
    )
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    ip: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
