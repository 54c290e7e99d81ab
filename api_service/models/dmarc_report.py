from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class DmarcReport(CreatedAtMixin, Base):
    """One DMARC report received for a domain: an aggregate report (RFC 7489 §7.2, one row per
    source in `DmarcReportRow`) or a failure report (§7.3, one row)."""

    __tablename__ = "dmarc_reports"
    __table_args__ = (
        # A reporter that mails the same report twice (a retry, two rua addresses) is counted once.
        UniqueConstraint("domain_id", "kind", "reporter", "report_id", name="uq_dmarc_reports_domain_id"),
        Index("ix_dmarc_reports_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    domain_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("domains.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), doc="aggregate or failure")
    reporter: Mapped[str] = mapped_column(String(255), doc="org_name of the receiver that reported")
    reporter_email: Mapped[str] = mapped_column(String(320), default="")
    report_id: Mapped[str] = mapped_column(String(255))
    begin_at: Mapped[datetime]
    end_at: Mapped[datetime]
    policy: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, doc="The published policy the reporter saw (p, sp, adkim, aspf, pct)"
    )
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)


class DmarcReportRow(Base):
    """One source of a report: messages from one IP with one set of results."""

    __tablename__ = "dmarc_report_rows"
    # The per-domain summary reads a domain's rows of a period.
    __table_args__ = (Index("ix_dmarc_report_rows_domain_id_begin_at", "domain_id", "begin_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    report_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dmarc_reports.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("domains.id", ondelete="CASCADE"))
    begin_at: Mapped[datetime]
    source_ip: Mapped[str] = mapped_column(String(45))
    ptr: Mapped[str | None] = mapped_column(String(255), default=None, doc="Reverse DNS name; None until looked up")
    count: Mapped[int] = mapped_column(BigInteger)
    disposition: Mapped[str] = mapped_column(String(20), default="none")
    dkim_aligned: Mapped[bool] = mapped_column(default=False, doc="policy_evaluated dkim=pass")
    spf_aligned: Mapped[bool] = mapped_column(default=False, doc="policy_evaluated spf=pass")
    header_from: Mapped[str] = mapped_column(String(255), default="")
    envelope_from: Mapped[str] = mapped_column(String(255), default="")
    auth_results: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, doc="The raw dkim/spf results: domain, selector, result")
    failure_detail: Mapped[str] = mapped_column(Text, default="", doc="A failure report's reported subject and why")


class ReceivedTlsReport(CreatedAtMixin, Base):
    """One SMTP TLS report (RFC 8460) received for a domain: per policy, sessions that succeeded and failed."""

    __tablename__ = "received_tls_reports"
    __table_args__ = (
        UniqueConstraint("domain_id", "reporter", "report_id", name="uq_received_tls_reports_domain_id"),
        Index("ix_received_tls_reports_domain_id_begin_at", "domain_id", "begin_at"),
        Index("ix_received_tls_reports_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    domain_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("domains.id", ondelete="CASCADE"))
    reporter: Mapped[str] = mapped_column(String(255))
    report_id: Mapped[str] = mapped_column(String(255))
    begin_at: Mapped[datetime]
    end_at: Mapped[datetime]
    success_count: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_count: Mapped[int] = mapped_column(BigInteger, default=0)
    policies: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, doc="Per policy: type, domain, counts, failure details")
