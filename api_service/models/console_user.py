from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType


class AccountRole(StrEnum):
    """What a user may do across the account; `member` users get per-server roles (`ConsoleServerRole`)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class ConsoleUser(CreatedAtMixin, Base):
    """A named web-console user: made from the shell, by invitation, or at a first single sign-on."""

    __tablename__ = "console_users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True, doc="Lower-cased")
    password_hash: Mapped[str | None] = mapped_column(Text, doc="Argon2id, in the PHC string format; None: no password (invited, SSO)")
    role: Mapped[AccountRole] = mapped_column(StrEnumType(AccountRole, 16))
    email: Mapped[str | None] = mapped_column(String(254))
    disabled_at: Mapped[datetime | None] = mapped_column(doc="Set: the user cannot sign in and every session has ended")
    session_version: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="Raised to end every session of the user at once (disable, role change)"
    )
    can_read_bodies: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", doc="A Viewer may open message bodies and raw sources"
    )
    totp_secret: Mapped[str | None] = mapped_column(String(64), doc="Base32 TOTP secret while enrolling or enrolled")
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, doc="The last time step accepted: a code works once")
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True, doc="The identity provider's `sub`, once signed in by SSO")
