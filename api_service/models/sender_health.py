from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class DomainHealth(Base):
    """The last sender-health checks of a domain (DMARC, SPF of the sending IPs, DKIM, bounce and
    complaint rates), as the API and the console show them."""

    __tablename__ = "domain_health"

    domain_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True)
    checked_at: Mapped[datetime]
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, doc="One object per check: Name, Status, Why, Host, Record")
    report_addresses: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, doc="Lower-cased mailto addresses of the domain's DMARC rua/ruf and TLS-RPT rua"
    )


class SourceIpHealth(Base):
    """The last checks of one sending IP: PTR with forward confirmation, HELO name, blocklists."""

    __tablename__ = "source_ip_health"

    ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    checked_at: Mapped[datetime]
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
