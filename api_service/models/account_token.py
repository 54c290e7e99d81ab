from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import TokenScope


class AccountToken(CreatedAtMixin, Base):
    """A named account API token (besides the ACCOUNT_TOKEN setting), kept only as its SHA-256 digest."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16), doc="The token's last characters, for recognising it")
    scope: Mapped[TokenScope] = mapped_column(StrEnumType(TokenScope, 10), default=TokenScope.FULL)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None, doc="Updated at most once a minute")
    last_used_ip: Mapped[str | None] = mapped_column(String(64), default=None)
