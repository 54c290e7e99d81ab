from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def bound_lock_waits(*, session: AsyncSession, milliseconds: int) -> None:
    """For the rest of this transaction, give up on a lock rather than wait longer than this."""
    await session.execute(text(f"SET LOCAL lock_timeout = {int(milliseconds)}"))
