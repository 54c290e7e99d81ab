"""Sender health and the DMARC and TLS reports received for a domain (account token, beyond Postmark)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.constants import HealthStatus
from shared.schemas.base import WireResponse


class HealthCheck(WireResponse):
    """One check: its verdict, why, and what to change (the record to publish, when a record fixes it)."""

    Name: str = Field(
        description="dkim, spf, spf_envelope, dmarc, dmarc_alignment, dmarc_reports, bounce_rate, complaint_rate, ptr, helo, dnsbl:<zone>"
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
