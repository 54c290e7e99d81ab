from __future__ import annotations

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class Domain(CreatedAtMixin, Base):
    """A sending domain: every address on it may send."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, doc="Lower-cased")
    return_path_domain: Mapped[str] = mapped_column(String(255), default="")
    dkim_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_private_key: Mapped[str] = mapped_column(Text, default="", doc="PEM; never returned by the API")
    dkim_public_key: Mapped[str] = mapped_column(Text, default="", doc="Base64 DER, the DNS p= value")
    dkim_verified: Mapped[bool] = mapped_column(default=False)
    spf_verified: Mapped[bool] = mapped_column(default=False)
    return_path_verified: Mapped[bool] = mapped_column(default=False)
