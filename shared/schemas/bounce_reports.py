"""The internal hop for reports mailed to return-path addresses (DSN bounces and ARF complaints)."""

from __future__ import annotations

from pydantic import Field

from shared.constants import MAX_ENVELOPE_ADDRESS_CHARS, MAX_ENVELOPE_RECIPIENTS
from shared.schemas.base import WireModel, WireResponse
from shared.schemas.smtp import EnvelopeAddress

BOUNCE_REPORT_PATH = "/internal/bounce-reports"
RETURN_PATH_DOMAINS_PATH = "/internal/bounce-reports/domains"


class BounceReport(WireModel):
    """A report received by the return-path listener."""

    RcptTo: list[EnvelopeAddress] = Field(
        max_length=MAX_ENVELOPE_RECIPIENTS, description="The return-path addresses the report was sent to"
    )
    RawMessage: str = Field(description="The report, base64-encoded")
    MailFrom: str = Field(default="", max_length=MAX_ENVELOPE_ADDRESS_CHARS, description="The envelope sender of the report (MAIL FROM)")


class BounceReportResult(WireResponse):
    Matched: int = Field(description="Bounces or complaints recorded")


class ReturnPathDomains(WireResponse):
    """The domains whose mail the return-path listener takes as reports."""

    Domains: list[str] = Field(description="RETURN_PATH_DOMAIN first, then every verified ReturnPathDomain")
