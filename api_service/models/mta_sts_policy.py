from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class MtaStsPolicy(Base):
    """The last valid MTA-STS policy (RFC 8461) fetched for a recipient domain: kept until it expires,
    across worker restarts, so that removing the TXT record cannot downgrade the domain (§5.1)."""

    __tablename__ = "mta_sts_policies"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(32), doc="The id of the _mta-sts TXT record it was fetched for")
    mode: Mapped[str] = mapped_column(String(10))
    mx: Mapped[list[str]] = mapped_column(ARRAY(Text))
    max_age: Mapped[int]
    policy_text: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime]
    expires_at: Mapped[datetime]
