from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class IdempotencyKey(CreatedAtMixin, Base):
    """An `Idempotency-Key` and the response it produced, stored with the messages it created."""

    __tablename__ = "idempotency_keys"
    # The retention purge finds keys past their window by age.
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(default=None)
    response_body: Mapped[Any] = mapped_column(JSONB, default=None, nullable=True)
