"""The Stats API: Postmark's shapes, US Eastern days, and the tag, date and stream filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from api_service.bounces.service import record_bounce
from api_service.mail.useragent import parse_user_agent
from api_service.messages import service as messages
from api_service.tracking import service as tracking
from shared.constants import BounceType, ClickLocation
from tests.factories import ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"


async def send(client: httpx.AsyncClient, server: ServerHandle, **fields: object) -> str:
    response = await client.post("/email", json=message(**fields), headers=server.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["MessageID"])


async def activity(app: FastAPI, message_id: str, *, opens: list[datetime], clicks: list[tuple[datetime, str]]) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        row = await messages.get_message_summary(session=session, message_id=uuid.UUID(message_id))
        assert row is not None
        client = parse_user_agent(CHROME)
        for at in opens:
            await tracking.store_open(
                session=session, message=row, recipient=row.recipients[0], client=client, hit=tracking.Hit(user_agent="", ip=""), at=at
            )
        for at, link in clicks:
            await tracking.store_click(
                session=session,
                message=row,
                recipient=row.recipients[0],
                link=link,
                location=ClickLocation.TEXT,
                client=client,
                hit=tracking.Hit(user_agent="", ip=""),
                at=at,
            )


class TestStats:
    async def test_series_by_eastern_day_with_filters(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        tagged = await send(client, server, Tag="news", TrackOpens=True)
        other = await send(client, server, Tag="other", TrackOpens=True, MessageStream="broadcast")
        # 03:00 UTC on 2 March is still 1 March in New York.
        await activity(
            app,
            tagged,
            opens=[
                datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
                datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
                datetime(2026, 3, 5, 15, 0, tzinfo=UTC),
            ],
            clicks=[
                (datetime(2026, 3, 2, 15, 0, tzinfo=UTC), "https://a.example"),
                (datetime(2026, 3, 2, 16, 0, tzinfo=UTC), "https://a.example"),
            ],
        )
        await activity(app, other, opens=[datetime(2026, 3, 2, 15, 0, tzinfo=UTC)], clicks=[])
        opens = (await client.get("/stats/outbound/opens", headers=server.headers)).json()
        assert opens == {
            "Days": [
                {"Date": "2026-03-01", "Opens": 1, "Unique": 1},
                {"Date": "2026-03-02", "Opens": 2, "Unique": 1},
                {"Date": "2026-03-05", "Opens": 1},
            ],
            "Opens": 4,
            "Unique": 2,
        }
        news = (await client.get("/stats/outbound/opens?tag=news&fromdate=2026-03-02&todate=2026-03-02", headers=server.headers)).json()
        assert news == {"Days": [{"Date": "2026-03-02", "Opens": 1}], "Opens": 1, "Unique": 0}
        broadcast = (await client.get("/stats/outbound/opens?messagestream=broadcast", headers=server.headers)).json()
        assert (broadcast["Opens"], broadcast["Unique"]) == (1, 1)
        clicks = (await client.get("/stats/outbound/clicks", headers=server.headers)).json()
        assert clicks == {"Days": [{"Date": "2026-03-02", "Clicks": 2, "Unique": 1}], "Clicks": 2, "Unique": 1}
        clients = (await client.get("/stats/outbound/opens/emailclients", headers=server.headers)).json()
        assert clients["Chrome"] == 4
        assert (await client.get("/stats/outbound/clicks/platforms", headers=server.headers)).json()["Desktop"] == 2
        assert (await client.get("/stats/outbound/opens/readtimes", headers=server.headers)).json() == {"Days": []}
        sends = (await client.get("/stats/outbound/sends", headers=server.headers)).json()
        assert sends["Sent"] == 2
        assert len(sends["Days"]) == 1
        tracked = (await client.get("/stats/outbound/tracked?tag=news", headers=server.headers)).json()
        assert tracked["Tracked"] == 1

    async def test_overview_bounces_and_spam(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        ids = [await send(client, server, To=f"r{n}@example.net") for n in range(4)]
        async with app.state.sessionmaker() as session, session.begin():
            at = datetime(2026, 4, 1, 12, tzinfo=UTC)
            for bounce_type, message_id in (
                (BounceType.HARD_BOUNCE, ids[0]),
                (BounceType.SOFT_BOUNCE, ids[1]),
                (BounceType.SPAM_COMPLAINT, ids[2]),
                (BounceType.SMTP_API_ERROR, ids[3]),
            ):
                await record_bounce(
                    session=session,
                    server_id=server.id,
                    bounce_type=bounce_type,
                    email="x@example.net",
                    details="",
                    message_id=uuid.UUID(message_id),
                    bounced_at=at,
                )
        overview = (await client.get("/stats/outbound", headers=server.headers)).json()
        assert (overview["Sent"], overview["Bounced"], overview["SMTPApiErrors"], overview["SpamComplaints"]) == (4, 2, 1, 1)
        assert overview["BounceRate"] == 50.0
        assert overview["SpamComplaintsRate"] == 25.0
        bounces = (await client.get("/stats/outbound/bounces", headers=server.headers)).json()
        assert bounces == {
            "Days": [{"Date": "2026-04-01", "HardBounce": 1, "SMTPApiError": 1, "SoftBounce": 1}],
            "HardBounce": 1,
            "SMTPApiError": 1,
            "SoftBounce": 1,
        }
        spam = (await client.get("/stats/outbound/spam", headers=server.headers)).json()
        assert spam == {"Days": [{"Date": "2026-04-01", "SpamComplaint": 1}], "SpamComplaint": 1}

    async def test_errors(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        bad_date = await client.get("/stats/outbound?fromdate=yesterday", headers=server.headers)
        assert (bad_date.status_code, bad_date.json()["ErrorCode"]) == (422, 900)
        no_stream = await client.get("/stats/outbound/sends?messagestream=nope", headers=server.headers)
        assert no_stream.json()["ErrorCode"] == 1226
        assert (await client.get("/stats/outbound")).status_code == 401
