from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType


class TlsReportStatus(StrEnum):
    SENDING = "sending"  # claimed by a worker, on its way
    SENT = "sent"  # every rua took it
    FAILED = "failed"  # no rua took it (the detail says why); not retried
    NO_RUA = "no-rua"  # the domain publishes no _smtp._tls record: nothing to send


class TlsReport(CreatedAtMixin, Base):
    """One TLS-RPT aggregate report (RFC 8460) of one recipient domain for one UTC day, as sent."""

    __tablename__ = "tls_reports"
    __table_args__ = (UniqueConstraint("policy_domain", "day", name="uq_tls_reports_policy_domain_day"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    policy_domain: Mapped[str] = mapped_column(String(253))
    day: Mapped[date] = mapped_column(Date, index=True)
    report_id: Mapped[str] = mapped_column(String(200), unique=True)
    rua: Mapped[str] = mapped_column(Text, doc="The rua URIs of _smtp._tls.<domain>, comma-separated")
    status: Mapped[TlsReportStatus] = mapped_column(StrEnumType(TlsReportStatus, 10))
    detail: Mapped[str] = mapped_column(Text, default="")
    successful_sessions: Mapped[int]
    failed_sessions: Mapped[int]
    report: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
