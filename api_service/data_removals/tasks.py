"""The worker's data removal round: one bounded step of the oldest pending request."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.data_removals import repository, service


async def process_due(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Work on one pending removal (one transaction); 1 when something changed, else 0."""
    async with sessionmaker() as session, session.begin():
        removal = await repository.claim_pending(session=session)
        if removal is None:
            return 0
        return int(await service.work_on(session=session, removal=removal, settings=settings))
