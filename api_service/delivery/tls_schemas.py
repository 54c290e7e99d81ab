"""The shapes of `/delivery/tls-reports` (beyond Postmark)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel


class TlsReportSummary(BaseModel):
    """One daily TLS-RPT report (RFC 8460) of a recipient domain, as sent."""

    ID: int
    Domain: str
    Date: date
    ReportID: str
    Status: str
    Rua: list[str]
    Detail: str
    SuccessfulSessions: int
    FailedSessions: int
    SentAt: datetime | None


class TlsReportList(BaseModel):
    """A page of TLS-RPT reports, newest day first."""

    TotalCount: int
    TlsReports: list[TlsReportSummary]


class TlsReportDetails(TlsReportSummary):
    """A report with its JSON, exactly as mailed (gzipped) or posted."""

    Report: dict[str, Any]
