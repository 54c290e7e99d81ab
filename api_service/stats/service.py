"""Postmark's stats shapes from the aggregates: `{Days: [{Date, <key>: n}], <key>: total}`, with
days that have nothing and keys that are zero left out, as Postmark does."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import MessageClick, MessageOpen
from api_service.stats import repository
from api_service.stats.repository import KeyedCount, StatsFilter
from shared.constants import BounceType, ClickLocation, Platform
from shared.schemas.stats import OutboundOverview, StatsSeries

__all__ = ["TIME_ZONE", "StatsFilter"]

# The zone whose days the counts are grouped by (Postmark counts US Eastern days).
TIME_ZONE = repository.EASTERN

READ_TIME_CAP = 20  # Postmark stops measuring at 20 seconds: longer reads are "20s+"


def series(rows: Iterable[tuple[str, str, int]], *, totals: Iterable[str] = ()) -> StatsSeries:
    """(day, key, count) rows → Postmark's series; `totals` are keys shown even when zero."""
    days: dict[str, dict[str, int]] = {}
    summed: dict[str, int] = dict.fromkeys(totals, 0)
    for day, key, count in rows:
        if count:
            days.setdefault(day, {})[key] = days.get(day, {}).get(key, 0) + count
            summed[key] = summed.get(key, 0) + count
    return StatsSeries.model_validate({"Days": [{"Date": day, **counts} for day, counts in sorted(days.items())], **summed})


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


async def overview(*, session: AsyncSession, f: StatsFilter) -> OutboundOverview:
    sends = await repository.sends(session=session, f=f)
    bounce_rows = await repository.bounces_by_type(session=session, f=f)
    opens = await repository.opens(session=session, f=f)
    clicks = await repository.clicks(session=session, f=f)
    sent = sum(d.sent for d in sends)
    by_type: dict[str, int] = {}
    for row in bounce_rows:
        by_type[row.key] = by_type.get(row.key, 0) + row.n
    spam = by_type.pop(BounceType.SPAM_COMPLAINT, 0)
    smtp_api_errors = by_type.pop(BounceType.SMTP_API_ERROR, 0)
    bounced = sum(by_type.values())
    return OutboundOverview(
        Sent=sent,
        Bounced=bounced,
        SMTPApiErrors=smtp_api_errors,
        BounceRate=_rate(bounced, sent),
        SpamComplaints=spam,
        SpamComplaintsRate=_rate(spam, sent),
        Opens=sum(d.opens for d in opens),
        UniqueOpens=sum(d.unique for d in opens),
        Tracked=sum(d.tracked for d in sends),
        WithLinkTracking=sum(d.with_link_tracking for d in sends),
        WithOpenTracking=sum(d.with_open_tracking for d in sends),
        TotalTrackedLinksSent=sum(d.tracked_links for d in sends),
        UniqueLinksClicked=sum(d.unique for d in clicks),
        TotalClicks=sum(d.clicks for d in clicks),
        WithClientRecorded=sum(d.with_client for d in opens),
        WithPlatformRecorded=sum(d.with_platform for d in opens),
        WithReadTimeRecorded=sum(d.with_read_time for d in opens),
        MachineOpens=sum(d.machine for d in opens),
        MachineClicks=sum(d.machine for d in clicks),
    )


async def sends(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(((d.day, "Sent", d.sent) for d in await repository.sends(session=session, f=f)), totals=["Sent"])


async def tracked(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(((d.day, "Tracked", d.tracked) for d in await repository.sends(session=session, f=f)), totals=["Tracked"])


async def bounces(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    rows = await repository.bounces_by_type(session=session, f=f)
    return series(r for r in rows if r.key != BounceType.SPAM_COMPLAINT)


async def bounced(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    """Bounces per day as the overview's `Bounced` counts them: spam complaints and SMTP API errors have their own totals."""
    rows = await repository.bounces_by_type(session=session, f=f)
    own_totals = {BounceType.SPAM_COMPLAINT, BounceType.SMTP_API_ERROR}
    return series((KeyedCount(r.day, "Bounced", r.n) for r in rows if r.key not in own_totals), totals=["Bounced"])


async def spam(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    rows = await repository.bounces_by_type(session=session, f=f)
    return series((r for r in rows if r.key == BounceType.SPAM_COMPLAINT), totals=["SpamComplaint"])


async def opens(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    days = await repository.opens(session=session, f=f)
    return series([row for d in days for row in ((d.day, "Opens", d.opens), (d.day, "Unique", d.unique))], totals=["Opens", "Unique"])


# Totals typed clients expect even when zero (postmark.js's *PlatformUsageCounts and ClickLocationCounts).
PLATFORMS = [p.value for p in Platform]
LOCATIONS = [c.value for c in ClickLocation]


async def open_platforms(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(await repository.opens_by(session=session, f=f, column=MessageOpen.platform), totals=PLATFORMS)


async def email_clients(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(await repository.opens_by(session=session, f=f, column=MessageOpen.client_family))


async def read_times(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    rows = await repository.read_times(session=session, f=f)
    return series(KeyedCount(r.day, f"{r.seconds}s" if r.seconds <= READ_TIME_CAP else f"{READ_TIME_CAP}s+", r.opens) for r in rows)


async def clicks(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    rows = await repository.clicks(session=session, f=f)
    return series([row for d in rows for row in ((d.day, "Clicks", d.clicks), (d.day, "Unique", d.unique))], totals=["Clicks", "Unique"])


async def browser_families(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(await repository.clicks_by(session=session, f=f, column=MessageClick.client_family))


async def click_platforms(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(await repository.clicks_by(session=session, f=f, column=MessageClick.platform), totals=PLATFORMS)


async def click_locations(*, session: AsyncSession, f: StatsFilter) -> StatsSeries:
    return series(await repository.clicks_by(session=session, f=f, column=MessageClick.click_location), totals=LOCATIONS)
