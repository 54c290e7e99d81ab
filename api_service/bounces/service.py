"""Bounce rules: activation lifts the recipient's suppression on the bounce's stream."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import repository
from api_service.errors import NotFound, PostmarkError
from api_service.models import Bounce
from shared.constants import BOUNCE_TYPES, BounceType, ErrorCode


async def get_bounce_or_raise(*, session: AsyncSession, server_id: int, bounce_id: int, for_update: bool = False) -> Bounce:
    bounce = await repository.get_bounce(session=session, server_id=server_id, bounce_id=bounce_id, for_update=for_update)
    if bounce is None:
        raise NotFound(ErrorCode.BOUNCE_NOT_FOUND, f"Bounce {bounce_id} was not found.")
    return bounce


async def activate(*, session: AsyncSession, server_id: int, bounce_id: int) -> Bounce:
    bounce = await get_bounce_or_raise(session=session, server_id=server_id, bounce_id=bounce_id, for_update=True)
    if not bounce.can_activate:
        raise PostmarkError(ErrorCode.BOUNCE_CANNOT_ACTIVATE, f"Bounces of type {bounce.type} cannot be activated.")
    await repository.reactivate_recipient(session=session, server_id=server_id, stream=bounce.message_stream, email=bounce.email)
    await session.refresh(bounce)
    return bounce


async def delivery_stats(*, session: AsyncSession, server_id: int) -> tuple[int, list[tuple[BounceType, int]]]:
    counts = dict(await repository.count_by_type(session=session, server_id=server_id))
    rows = [(t, counts[t.value]) for t in BOUNCE_TYPES if counts.get(t.value)]
    return await repository.count_inactive(session=session, server_id=server_id), rows
