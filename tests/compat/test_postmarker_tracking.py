"""Postmark's Python client, unchanged, against Postgate: streams, opens, clicks and stats."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

from api_service.config import Settings
from api_service.db import create_engine, create_sessionmaker
from api_service.mail.useragent import parse_user_agent
from api_service.messages import service as messages
from api_service.tracking import service as tracking
from shared.constants import ClickLocation
from tests.compat.test_postmarker import postmark

__all__ = ["postmark"]
pytestmark = pytest.mark.slow
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


def record_activity(settings: Settings, message_id: str) -> None:
    """An open and a click, recorded as the tracking endpoints record them."""

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        async with create_sessionmaker(engine)() as session, session.begin():
            message = await messages.get_message_summary(session=session, message_id=uuid.UUID(message_id))
            assert message is not None
            client = parse_user_agent(IPHONE)
            at = datetime.now(UTC)
            await tracking.store_open(
                session=session, message=message, recipient="user@example.net", client=client, hit=tracking.Hit(user_agent="", ip=""), at=at
            )
            await tracking.store_click(
                session=session,
                message=message,
                recipient="user@example.net",
                link="https://example.com/a",
                location=ClickLocation.HTML,
                client=client,
                hit=tracking.Hit(user_agent="", ip=""),
                at=at,
            )
        await engine.dispose()

    asyncio.run(run())


class TestPostmarkerStreams:
    """postmarker 1.0 has no stream manager; its generic `call` sends what the client would."""

    def test_create_list_edit_archive_unarchive(self, postmark: PostmarkClient) -> None:
        created = postmark.call(
            "POST", "/message-streams", data={"ID": "news", "Name": "News", "MessageStreamType": "Broadcasts", "Description": "Monthly"}
        )
        assert created["SubscriptionManagementConfiguration"] == {"UnsubscribeHandlingType": "Postmark"}
        listed = postmark.call("GET", "/message-streams", messageStreamType="Broadcasts", includeArchivedStreams="false")
        assert [s["ID"] for s in listed["MessageStreams"]] == ["broadcast", "news"]
        assert postmark.call("PATCH", "/message-streams/news", data={"Name": "Newsletter"})["Name"] == "Newsletter"
        archived = postmark.call("POST", "/message-streams/news/archive")
        assert archived["ID"] == "news"
        assert archived["ExpectedPurgeDate"]
        with pytest.raises(ClientError) as caught:
            postmark.emails.send(From="app@compat.example", To="x@example.net", Subject="x", TextBody="x", MessageStream="news")
        assert caught.value.error_code == 1235
        assert postmark.call("POST", "/message-streams/news/unarchive")["ArchivedAt"] is None
        with pytest.raises(ClientError) as caught:
            postmark.call("GET", "/message-streams/nope")
        assert caught.value.error_code == 1226


class TestPostmarkerOpensClicksStats:
    def test_opens_clicks_and_stats(self, postmark: PostmarkClient, settings: Settings) -> None:
        sent = postmark.emails.send(
            From="app@compat.example",
            To="user@example.net",
            Subject="Hi",
            HtmlBody='<a href="https://example.com/a">a</a>',
            TrackOpens=True,
            TrackLinks="HtmlOnly",
            Tag="hello",
        )
        record_activity(settings, sent["MessageID"])
        [opened] = postmark.messages.outbound.opens.all(count=10, tag="hello")
        assert opened.Recipient == "user@example.net"
        assert opened.Platform == "Mobile"
        assert opened.OS["Family"] == "iOS"
        assert postmark.messages.outbound.opens.all(count=10, platform="Desktop") == []
        assert postmark.messages.outbound.opens.get(sent["MessageID"])["TotalCount"] == 1
        assert postmark.messages.outbound.get(sent["MessageID"]).opens()["Opens"][0]["FirstOpen"] is True
        clicks = postmark.call("GET", "/messages/outbound/clicks", count=10, offset=0)
        assert clicks["Clicks"][0]["OriginalLink"] == "https://example.com/a"
        assert postmark.call("GET", f"/messages/outbound/clicks/{sent['MessageID']}", count=10, offset=0)["TotalCount"] == 1

        overview = postmark.stats.overview(tag="hello")
        assert (overview["Sent"], overview["Opens"], overview["UniqueOpens"], overview["TotalClicks"]) == (1, 1, 1, 1)
        assert overview["WithLinkTracking"] == overview["WithOpenTracking"] == 1
        assert postmark.stats.sends()["Sent"] == 1
        assert postmark.stats.bounces()["Days"] == []
        assert postmark.stats.spam()["SpamComplaint"] == 0
        assert postmark.stats.tracked()["Tracked"] == 1
        assert postmark.stats.opens()["Unique"] == 1
        assert postmark.stats.opens_platforms()["Mobile"] == 1
        assert postmark.stats.emailclients()["Days"][0]["Date"]
        assert postmark.stats.readtimes()["Days"] == []
        assert postmark.stats.clicks()["Clicks"] == 1
        assert postmark.stats.browserfamilies()["Days"]
        assert postmark.stats.clicks_platforms()["Mobile"] == 1
        assert postmark.stats.location()["HTML"] == 1
        today = datetime.now(UTC).date().isoformat()
        assert postmark.stats.sends(fromdate="2020-01-01", todate=today)["Sent"] == 1
