from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class BounceDump(CreatedAtMixin, Base):
    """The raw source behind bounces (a refused message, a DSN, a complaint), stored once however
    many bounces it explains."""

    __tablename__ = "bounce_dumps"
    # The retention purge finds a server's expired dumps by age.
    __table_args__ = (Index("ix_bounce_dumps_server_id_created_at", "server_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
