"""The worker's DNS round: a rotated DKIM key replaces the old one, a new domain becomes usable,
and a return-path or tracking domain is verified, as soon as DNS publishes them, without anyone
calling verifyDkim (or verifyReturnPath, verifyTrackingDomain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.domains import service
from api_service.domains.dns import DnsLookup

BATCH = 10


async def check_dns(
    *, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup, interval_seconds: float, targets: service.CnameTargets | None = None
) -> int:
    """Look up the domains due for a check; returns how many were checked."""
    async with sessionmaker() as session, session.begin():
        checked_before = datetime.now(UTC) - timedelta(seconds=interval_seconds)
        return await service.check_due(session=session, dns=dns, checked_before=checked_before, limit=BATCH, targets=targets)
