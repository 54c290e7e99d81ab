from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, StrEnumType


class ServerRole(StrEnum):
    """A member's role on one server: Editor changes its settings, Viewer only reads."""

    EDITOR = "editor"
    VIEWER = "viewer"


class ConsoleServerRole(Base):
    """A console user's role on one server (for users whose account role is `member`)."""

    __tablename__ = "console_server_roles"

    username: Mapped[str] = mapped_column(String(64), ForeignKey("console_users.username", ondelete="CASCADE"), primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[ServerRole] = mapped_column(StrEnumType(ServerRole, 16))
