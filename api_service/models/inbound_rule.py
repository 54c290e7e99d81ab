from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class InboundRule(CreatedAtMixin, Base):
    """A sender a server blocks: an email address or a domain, lower-cased."""

    __tablename__ = "inbound_rules"
    __table_args__ = (UniqueConstraint("server_id", "rule", name="uq_inbound_rules_server_id_rule"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(320))
