"""Issue 22 row 7: a data removal also deletes the address' opens and clicks (with its IP and
User-Agent) on messages that keep other recipients, and the tracking URLs in that address' copy
record nothing afterwards (a link still goes where it went)."""

from __future__ import annotations

import re

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.config import Settings
from tests.api.conftest import SinkHandler, Worker
from tests.api.data_removals.test_router import request, run_until_idle
from tests.api.tracking.conftest import read_copy
from tests.factories import ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio

TARGET = "gone.person@example.net"
OTHER = "stays@example.org"
HTML = '<p>Hi <a href="https://example.com/offer">Offer</a></p>'
READER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"}


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await sending_server(client)


def tracking_paths(data: bytes) -> dict[str, str]:
    """The open and click paths in a delivered copy, by segment."""
    html = read_copy(data).html
    return {segment: f"/t/{segment}/{token}" for segment, token in re.findall(r"/t/([oc])/([A-Za-z0-9_-]{40,})", html)}


async def activity(client: httpx.AsyncClient, server: ServerHandle) -> list[tuple[str, str]]:
    opens = (await client.get("/messages/outbound/opens?count=50&offset=0", headers=server.headers)).json()["Opens"]
    clicks = (await client.get("/messages/outbound/clicks?count=50&offset=0", headers=server.headers)).json()["Clicks"]
    return sorted([("open", o["Recipient"]) for o in opens] + [("click", c["Recipient"]) for c in clicks])


class TestRemovalCoversTracking:
    async def test_opens_and_clicks_go_and_old_tokens_record_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        settings: Settings,
        server: ServerHandle,
        worker: Worker,
        sink: tuple[SinkHandler, int],
    ) -> None:
        body = message(To=f"{TARGET}, {OTHER}", HtmlBody=HTML, TrackOpens=True, TrackLinks="HtmlOnly")
        sent = await client.post("/email", json=body, headers=server.headers)
        assert sent.status_code == 200, sent.text
        assert await worker.deliver() == 2
        paths = {r.rcpt_tos[0]: tracking_paths(r.data) for r in sink[0].received}
        assert sorted(paths) == sorted([TARGET, OTHER])
        for recipient in (TARGET, OTHER):
            assert (await client.get(paths[recipient]["o"], headers=READER)).status_code == 200
            assert (await client.get(paths[recipient]["c"], headers=READER)).status_code == 302
        assert await activity(client, server) == sorted([("open", TARGET), ("click", TARGET), ("open", OTHER), ("click", OTHER)])

        created = await request(client, RequestedFor=TARGET)
        await run_until_idle(app, settings)
        done = (await client.get(f"/data-removals/{created['ID']}", headers={"X-Postmark-Account-Token": settings.account_token})).json()
        assert done["Status"] == "Done"
        assert done["Removed"]["OpensAndClicksDeleted"] == 2
        assert await activity(client, server) == [("click", OTHER), ("open", OTHER)]

        # The removed address' copy is still in its inbox: its links work, and record nothing.
        assert (await client.get(paths[TARGET]["o"], headers=READER)).status_code == 200
        followed = await client.get(paths[TARGET]["c"], headers=READER)
        assert followed.status_code == 302
        assert followed.headers["location"] == "https://example.com/offer"
        assert await activity(client, server) == [("click", OTHER), ("open", OTHER)]
