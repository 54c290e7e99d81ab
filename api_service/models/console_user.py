from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class ConsoleUser(CreatedAtMixin, Base):
    """A named web-console user, made with `python -m api_service.console create-user NAME`."""

    __tablename__ = "console_users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True, doc="Lower-cased")
    password_hash: Mapped[str] = mapped_column(Text, doc="Argon2id, in the PHC string format")
