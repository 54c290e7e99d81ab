from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import DataRemovalStatus


class DataRemoval(CreatedAtMixin, Base):
    """A request to erase what Postgate holds about one address; the worker carries it out.

    `requested_for` is emptied once the removal is done (only its SHA-256 is kept), so the request
    does not outlive the data it removed.
    """

    __tablename__ = "data_removals"
    __table_args__ = (Index("ix_data_removals_pending", "id", postgresql_where=text("status = 'Pending'")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_for: Mapped[str] = mapped_column(String(320), doc="Lower-cased; empty once done")
    requested_for_sha256: Mapped[str] = mapped_column(String(64))
    notify_when_completed: Mapped[bool] = mapped_column(default=False)
    status: Mapped[DataRemovalStatus] = mapped_column(
        StrEnumType(DataRemovalStatus, 10), default=DataRemovalStatus.PENDING, doc="Pending or Done"
    )
    next_step_at: Mapped[datetime | None] = mapped_column(default=None, doc="Not worked on before this (its messages were being delivered)")
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, doc="What was deleted or scrubbed, per kind of row")
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
