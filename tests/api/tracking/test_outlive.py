"""Issue 22 rows 5 and 12: what goes out in mail outlives the message row. Tracked links and
unsubscribe links keep working (recording nothing) after retention deleted the message; a URL
whose token would be longer than the tracking routes accept is left as written."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import update

from api_service.messages import service as messages
from api_service.models import Message
from tests.api.conftest import SinkHandler, Worker
from tests.api.tracking.conftest import CHROME_MAC, read_copy
from tests.factories import ACCOUNT, ServerHandle, create_domain, create_server, message

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

HTML = '<p>News <a href="https://example.com/news">Read</a> · <a href="{{{ pm:unsubscribe }}}">Unsubscribe</a></p>'


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


async def purge(app: FastAPI, server: ServerHandle, message_id: str) -> None:
    """What retention does to a message older than the server's RetentionDays."""
    async with app.state.sessionmaker() as session, session.begin():
        aged = update(Message).where(Message.id == uuid.UUID(message_id)).values(created_at=datetime.now(UTC) - timedelta(days=30))
        await session.execute(aged)
    async with app.state.sessionmaker() as session, session.begin():
        assert await messages.purge_expired(session=session, server_id=server.id, days=7, limit=100) == 1


class TestLinksOutliveTheMessage:
    async def test_link_and_unsubscribe_still_work_after_the_message_is_purged(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        tracking_worker: Worker,
        sink: tuple[SinkHandler, int],
        live_api: str,
    ) -> None:
        body = message(
            From="News <news@example.org>", To="fan@example.net", MessageStream="broadcast", HtmlBody=HTML, TrackLinks="HtmlOnly"
        )
        sent = await client.post("/email", json=body, headers=server.headers)
        assert sent.status_code == 200, sent.text
        assert await tracking_worker.deliver() == 1
        [received] = sink[0].received
        copy = read_copy(received.data)
        [link] = copy.urls(live_api, "c", copy.html)
        [unsubscribe] = re.findall(r"<(https?://[^>]+)>", str(copy.message["List-Unsubscribe"]))

        await purge(app, server, sent.json()["MessageID"])
        assert (await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)).status_code == 404

        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as browser:
            followed = await browser.get(link)
            assert followed.status_code == 302
            assert followed.headers["location"] == "https://example.com/news"
            page = await browser.get(unsubscribe)
            assert page.status_code == 200
            assert "fan@example.net" in page.text
            clicked = await browser.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
            assert clicked.status_code == 200
        # Nothing recorded about a message that is gone; the unsubscribe is, on its stream.
        assert (await client.get("/messages/outbound/clicks?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0
        dump = (await client.get("/message-streams/broadcast/suppressions/dump", headers=server.headers)).json()["Suppressions"]
        assert [s["EmailAddress"] for s in dump] == ["fan@example.net"]
        refused = await client.post("/email", json=body, headers=server.headers)
        assert refused.json()["ErrorCode"] == 406

    async def test_link_and_unsubscribe_still_answer_after_the_server_is_deleted(
        self,
        client: httpx.AsyncClient,
        server: ServerHandle,
        tracking_worker: Worker,
        sink: tuple[SinkHandler, int],
        live_api: str,
    ) -> None:
        body = message(
            From="News <news@example.org>", To="fan@example.net", MessageStream="broadcast", HtmlBody=HTML, TrackLinks="HtmlOnly"
        )
        assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 1
        copy = read_copy(sink[0].received[0].data)
        [link] = copy.urls(live_api, "c", copy.html)
        [unsubscribe] = re.findall(r"<(https?://[^>]+)>", str(copy.message["List-Unsubscribe"]))

        deleted = await client.delete(f"/servers/{server.id}", headers=ACCOUNT)
        assert deleted.status_code == 200, deleted.text

        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as browser:
            followed = await browser.get(link)
            assert followed.status_code == 302
            assert followed.headers["location"] == "https://example.com/news"
            page = await browser.get(unsubscribe)
            assert page.status_code == 200
            assert "fan@example.net" in page.text
            clicked = await browser.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
            assert clicked.status_code == 200
            # A token of a server that never existed still opens nothing.
            forged = link.replace(link.rsplit("/", 1)[1], "A" * 80)
            assert (await browser.get(forged)).status_code == 404


class TestLongUrls:
    async def test_url_whose_token_would_be_too_long_is_left_untracked(
        self,
        client: httpx.AsyncClient,
        server: ServerHandle,
        tracking_worker: Worker,
        sink: tuple[SinkHandler, int],
        live_api: str,
    ) -> None:
        long_url = "https://example.com/" + "漢" * 1520
        html = f'<p><a href="{long_url}">Long</a> <a href="https://example.com/short">Short</a></p>'
        body = message(From="app@example.org", To="reader@example.net", HtmlBody=html, TrackLinks="HtmlOnly")
        assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 1
        copy = read_copy(sink[0].received[0].data)
        [tracked] = copy.urls(live_api, "c", copy.html)  # the short one only
        assert f'href="{long_url}"' in copy.html  # as written: it still works, untracked
        async with httpx.AsyncClient() as browser:
            followed = await browser.get(tracked)
            assert followed.status_code == 302
            assert followed.headers["location"] == "https://example.com/short"
