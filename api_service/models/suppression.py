from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import SuppressionOrigin, SuppressionReason


class Suppression(CreatedAtMixin, Base):
    """A recipient that a stream will not send to (hard bounce, complaint or manual)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("server_id", "message_stream", "email", name="uq_suppressions_recipient"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    message_stream: Mapped[str] = mapped_column(String(30))
    email: Mapped[str] = mapped_column(String(320), doc="Lower-cased")
    reason: Mapped[SuppressionReason] = mapped_column(StrEnumType(SuppressionReason, 30))
    origin: Mapped[SuppressionOrigin] = mapped_column(StrEnumType(SuppressionOrigin, 20))
