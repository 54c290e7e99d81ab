"""The worker's DNS rounds: a rotated DKIM key replaces the old one, a new domain becomes usable,
and a return-path or tracking domain is verified, as soon as DNS publishes them, without anyone
calling verifyDkim (or verifyReturnPath, verifyTrackingDomain); and sender health is re-checked
every SENDER_HEALTH_INTERVAL_SECONDS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.domains import health_service, service
from api_service.domains.dns import DnsLookup
from api_service.domains.health import HealthConfig

BATCH = 10


async def check_dns(
    *, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup, interval_seconds: float, targets: service.CnameTargets | None = None
) -> int:
    """Look up the domains due for a check; returns how many were checked."""
    async with sessionmaker() as session, session.begin():
        checked_before = datetime.now(UTC) - timedelta(seconds=interval_seconds)
        return await service.check_due(session=session, dns=dns, checked_before=checked_before, limit=BATCH, targets=targets)


async def check_health(
    *, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup, config: HealthConfig, interval_seconds: float
) -> int:
    """Re-check the sender health of the domains and source IPs due; returns how many were checked."""
    return await health_service.check_due(sessionmaker=sessionmaker, dns=dns, config=config, interval_seconds=interval_seconds)
