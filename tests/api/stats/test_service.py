"""Stats service functions that no API route exposes on their own."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from api_service.bounces.service import record_bounce
from api_service.stats import service
from shared.constants import BounceType
from tests.factories import sending_server

pytestmark = pytest.mark.asyncio


class TestBounced:
    async def test_counts_per_day_what_the_overview_counts_as_bounced(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        async with app.state.sessionmaker() as session, session.begin():
            for bounce_type, day in (
                (BounceType.HARD_BOUNCE, 1),
                (BounceType.SOFT_BOUNCE, 1),
                (BounceType.TRANSIENT, 3),
                (BounceType.SPAM_COMPLAINT, 1),
                (BounceType.SMTP_API_ERROR, 1),
            ):
                await record_bounce(
                    session=session,
                    server_id=server.id,
                    bounce_type=bounce_type,
                    email="x@example.net",
                    details="",
                    bounced_at=datetime(2026, 4, day, 12, tzinfo=UTC),
                )
        async with app.state.sessionmaker() as session:
            f = service.StatsFilter(server_id=server.id)
            bounced = await service.bounced(session=session, f=f)
            overview = await service.overview(session=session, f=f)
        assert bounced.model_dump() == {"Days": [{"Date": "2026-04-01", "Bounced": 2}, {"Date": "2026-04-03", "Bounced": 1}], "Bounced": 3}
        assert overview.Bounced == 3
