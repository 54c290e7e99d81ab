from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class ConsolePolicy(Base):
    """The console's account-wide rules an Owner sets (one row, id 1)."""

    __tablename__ = "console_policies"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False)
