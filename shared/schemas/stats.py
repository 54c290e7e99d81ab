"""The Stats API."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from shared.schemas.base import WireResponse


class OutboundOverview(WireResponse):
    """`GET /stats/outbound`: totals over the period."""

    Sent: int
    Bounced: int
    SMTPApiErrors: int
    BounceRate: float = Field(description="Bounced / Sent, in percent")
    SpamComplaints: int
    SpamComplaintsRate: float
    Opens: int
    UniqueOpens: int
    Tracked: int
    WithLinkTracking: int
    WithOpenTracking: int
    TotalTrackedLinksSent: int
    UniqueLinksClicked: int
    TotalClicks: int
    WithClientRecorded: int
    WithPlatformRecorded: int
    WithReadTimeRecorded: int
    MachineOpens: int = Field(
        default=0, description="Beyond Postmark: opens by privacy proxies and scanners (not in Opens unless includeMachines=true)"
    )
    MachineClicks: int = Field(
        default=0, description="Beyond Postmark: clicks by scanners (not in TotalClicks unless includeMachines=true)"
    )


class StatsSeries(WireResponse):
    """`{Days: [{Date: "YYYY-MM-DD", <key>: n}], <key>: total}`: days without data and zero keys are
    left out; the keys depend on the endpoint (Sent; HardBounce, SoftBounce …; Opens and Unique;
    Desktop, Mobile, WebMail, Unknown; client and browser names; HTML and Text …)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    Days: list[dict[str, str | int]]
