from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import DataRemoval
from shared.constants import DataRemovalStatus


async def add(*, session: AsyncSession, removal: DataRemoval) -> DataRemoval:
    session.add(removal)
    await session.flush()
    return removal


async def get(*, session: AsyncSession, removal_id: int) -> DataRemoval | None:
    return await session.get(DataRemoval, removal_id)


async def claim_pending(*, session: AsyncSession) -> DataRemoval | None:
    """The oldest pending removal that may be worked on now, locked for this transaction (SKIP
    LOCKED: another worker takes the next one)."""
    stmt = (
        select(DataRemoval)
        .where(DataRemoval.status == DataRemovalStatus.PENDING)
        .where(or_(DataRemoval.next_step_at.is_(None), DataRemoval.next_step_at <= func.now()))
        .order_by(DataRemoval.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
