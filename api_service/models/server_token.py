from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import TokenScope


class ServerToken(CreatedAtMixin, Base):
    """A named server API token, kept only as its SHA-256 digest."""

    __tablename__ = "server_tokens"
    __table_args__ = (UniqueConstraint("server_id", "name", name="uq_server_tokens_server_id_name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16), doc="The token's last characters, for recognising it")
    scope: Mapped[TokenScope] = mapped_column(StrEnumType(TokenScope, 10), default=TokenScope.FULL)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None, doc="Updated at most once a minute")
    last_used_ip: Mapped[str | None] = mapped_column(String(64), default=None)
