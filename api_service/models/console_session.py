from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class ConsoleSession(CreatedAtMixin, Base):
    """A signed-in console browser. The cookie holds a random token; only its SHA-256 is kept."""

    __tablename__ = "console_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    credential_sha256: Mapped[str] = mapped_column(
        String(64), doc="Digest of the credential signed in with: a new password or account token ends the session"
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    pending: Mapped[str | None] = mapped_column(
        String(16), doc="None: signed in; `second-factor`: the password is checked, the code is not; `enrol`: must set up 2FA"
    )
    via_sso: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", doc="Signed in by single sign-on: the provider asked any second factor"
    )
    challenge: Mapped[str | None] = mapped_column(String(128), doc="The WebAuthn challenge of a ceremony under way (base64url)")
