"""Sender health and the DMARC and TLS reports received for a domain (account token, beyond Postmark)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.constants import HealthStatus
from shared.schemas.base import WireResponse


class HealthCheck(WireResponse):
    """One check: its verdict, why, and what to change (the record to publish, when a record fixes it)."""

    Name: str = Field(
        description="dkim, spf, spf_envelope, dmarc, dmarc_alignment, dmarc_reports, dmarc_report_authorization, bounce_rate, complaint_rate; per IP: ptr, helo, dnsbl:<zone> (source_ips when SOURCE_IPS is empty)"
    )
    Status: HealthStatus
    Why: str
    Fix: str = Field(default="", description="What to do; empty when the check passes")
    Host: str = Field(default="", description="The DNS name to publish Record at")
    Type: str = Field(default="", description="TXT, CNAME, A or PTR")
    Record: str = Field(default="", description="The exact record value to publish")


class SourceIpHealth(WireResponse):
    """The checks of one sending IP (SOURCE_IPS)."""

    IP: str
    Status: HealthStatus
    CheckedAt: datetime | None
    Checks: list[HealthCheck]


class DomainHealth(WireResponse):
    """A domain's sender health: its own checks and those of the IPs it is sent from."""

    ID: int
    Name: str
    Status: HealthStatus = Field(description="The worst verdict of Checks and SourceIPs")
    CheckedAt: datetime | None
    Checks: list[HealthCheck]
    SourceIPs: list[SourceIpHealth]


class DmarcSource(WireResponse):
    """Mail one IP sent as the domain, as the receivers' aggregate reports counted it."""

    IP: str
    PTR: str = Field(description="Reverse DNS name; empty when it has none")
    Messages: int
    DMARCPass: int = Field(description="Messages that passed DMARC (aligned SPF or aligned DKIM)")
    SPFAligned: int
    DKIMAligned: int
    Classification: str = Field(
        description="postgate (one of SOURCE_IPS or of the ip4:/ip6: networks of SPF_TEXT_VALUE), forwarded (not ours, DKIM still aligned), authorized (not ours, aligned SPF: "
        "another service the domain allows), unauthenticated (fails DMARC: an unconfigured service or a spoofer)"
    )
    Disposition: dict[str, int] = Field(description="Messages by what the receiver did: none, quarantine, reject")
    Reporters: list[str]


class DmarcFailure(WireResponse):
    """One failure (forensic) report."""

    ReceivedAt: datetime
    Reporter: str
    SourceIP: str
    HeaderFrom: str
    EnvelopeFrom: str
    Detail: str


class DmarcSummary(WireResponse):
    """The DMARC aggregate and failure reports received for a domain over the last `Days` days."""

    ID: int
    Name: str
    Days: int
    Reports: int
    Messages: int
    DMARCPassRate: float = Field(description="Percent of Messages")
    SPFAlignedRate: float
    DKIMAlignedRate: float
    NotPostgateMessages: int = Field(description="Messages from sources that are not Postgate's (forwarders, other services, spoofers)")
    Sources: list[DmarcSource]
    FailureReports: list[DmarcFailure]


class TlsReportPolicy(WireResponse):
    PolicyType: str
    PolicyDomain: str
    Successes: int
    Failures: int
    FailureDetails: list[dict[str, str | int]]


class TlsReportView(WireResponse):
    """One SMTP TLS report (RFC 8460) received."""

    Reporter: str
    ReportID: str
    Begin: datetime
    End: datetime
    Successes: int
    Failures: int
    Policies: list[TlsReportPolicy]


class TlsReportList(WireResponse):
    """The SMTP TLS reports received for a domain over the last `Days` days, newest first."""

    ID: int
    Name: str
    Days: int
    Successes: int
    Failures: int
    Reports: list[TlsReportView]
