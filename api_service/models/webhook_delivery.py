from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(CreatedAtMixin, Base):
    """One event to POST to one URL: the webhook outbox, written with the event it reports."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        # The POSTs about one record (an inbound message's hook attempts, on its console page).
        Index("ix_webhook_deliveries_origin", "server_id", "record_type", "origin_id", postgresql_where=text("origin_id <> ''")),
        # The retention purge: a server's finished (sent or given up) rows by age.
        Index("ix_webhook_deliveries_finished", "server_id", "created_at", postgresql_where=text("status <> 'pending'")),
        # A webhook's deliveries by time (replays of a time range).
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at", postgresql_where=text("webhook_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    record_type: Mapped[str] = mapped_column(String(30))
    url: Mapped[str] = mapped_column(Text)
    http_auth_username: Mapped[str] = mapped_column(String(255), default="")
    http_auth_password: Mapped[str] = mapped_column(String(255), default="")
    http_headers: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        StrEnumType(WebhookDeliveryStatus, 20), default=WebhookDeliveryStatus.PENDING, doc="pending, delivered or failed"
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(default=None, doc="Which claim holds the row; the final update is fenced by it")
    last_status: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    retry_schedule: Mapped[list[float] | None] = mapped_column(
        JSONB, default=None, doc="Seconds between attempts for this row; null: the worker's WEBHOOK_RETRY_SCHEDULE"
    )
    webhook_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("webhooks.id", ondelete="SET NULL"),
        default=None,
        doc="The webhook this POST is for (its signing key); null for the server's legacy hook URLs",
    )
    replay_of: Mapped[int | None] = mapped_column(BigInteger, default=None, doc="The delivery this row sends again (a replay)")
    origin_id: Mapped[str] = mapped_column(
        String(64),
        default="",
        server_default="",
        doc="The record this event is about, for its record type's outcome handler (an inbound message id)",
    )
