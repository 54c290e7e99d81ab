from __future__ import annotations

from datetime import date

from sqlalchemy import ARRAY, BigInteger, Date, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class TlsReportSession(Base):
    """TLS-RPT (RFC 8460): delivery sessions of one UTC day under one policy of a recipient domain,
    successful (`result_type` "") or failed for one reason at one MX."""

    __tablename__ = "tls_report_sessions"
    __table_args__ = (
        UniqueConstraint(
            "day",
            "policy_domain",
            "policy_key",
            "result_type",
            "receiving_mx",
            "receiving_ip",
            "sending_ip",
            name="uq_tls_report_sessions_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    policy_domain: Mapped[str] = mapped_column(String(253))
    policy_key: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the policy type and strings: one policy of the report")
    policy_type: Mapped[str] = mapped_column(String(20))
    policy_strings: Mapped[list[str]] = mapped_column(ARRAY(Text))
    mx_hosts: Mapped[list[str]] = mapped_column(ARRAY(Text))
    result_type: Mapped[str] = mapped_column(String(40), doc="RFC 8460 result type of a failure; empty for successes")
    receiving_mx: Mapped[str] = mapped_column(String(253))
    receiving_ip: Mapped[str] = mapped_column(String(64))
    sending_ip: Mapped[str] = mapped_column(String(64), doc="Postgate's own address in the failed session")
    sessions: Mapped[int] = mapped_column(BigInteger)
