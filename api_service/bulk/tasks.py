"""Background task of the worker: expanding bulk requests into messages, one bounded batch per transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.bulk import service
from api_service.config import Settings


async def expand_due(*, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """One batch of the next bulk request that needs one; returns how many entries it took (0: nothing to do)."""
    async with sessionmaker() as session, session.begin():
        return await service.expand_next(session=session, batch_size=settings.bulk_batch_size, message_id_domain=settings.message_id_domain)
