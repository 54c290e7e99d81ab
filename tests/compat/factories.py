"""Helpers for the compat suite that reach below the API, for events no client can cause (a bounce)."""

from __future__ import annotations

import asyncio
import uuid

from api_service.bounces.service import record_bounce
from api_service.config import Settings
from api_service.db import create_engine, create_sessionmaker
from shared.constants import BounceType


def add_bounce(settings: Settings, server_id: int, bounce_type: BounceType, email: str, message_id: str) -> None:
    """Record a bounce of `message_id` as the bounce-report intake would."""

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        async with create_sessionmaker(engine)() as session:
            await record_bounce(
                session=session,
                server_id=server_id,
                bounce_type=bounce_type,
                email=email,
                details="550 5.1.1 no such user",
                message_id=uuid.UUID(message_id),
                dump=b"raw",
                tag="t",
            )
            await session.commit()
        await engine.dispose()

    asyncio.run(run())
