"""The worker's round for the reports received: the PTR names that were not looked up at receipt
(a report with more sources than its time budget allowed) are looked up afterwards."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.dmarc import service
from api_service.domains.dns import DnsLookup


async def fill_ptrs(*, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup) -> int:
    """Look up a batch of missing PTR names; returns how many IPs were looked up."""
    return await service.fill_ptrs(sessionmaker=sessionmaker, dns=dns)
