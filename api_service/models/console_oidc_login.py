from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class ConsoleOidcLogin(Base):
    """A single sign-on under way: the `state` sent to the provider (its SHA-256), with the nonce
    and PKCE verifier the callback needs. Used once; expires in minutes."""

    __tablename__ = "console_oidc_logins"

    state_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)
