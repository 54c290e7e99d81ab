from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from tests.factories import ServerHandle, create_server, message, sending_server

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await sending_server(client)
    batch = [
        message(To="ann@example.net", Tag="welcome", Subject="Welcome Ann", Metadata={"plan": "pro"}),
        message(To="bob@example.net", Tag="reset", Subject="Reset password"),
        message(To="cy@example.net", Tag="welcome", Subject="Welcome Cy", MessageStream="broadcast"),
    ]
    response = await client.post("/email/batch", json=batch, headers=server.headers)
    assert [r["ErrorCode"] for r in response.json()] == [0, 0, 0]
    return server


async def search(client: httpx.AsyncClient, server: ServerHandle, query: str) -> dict[str, object]:
    response = await client.get(f"/messages/outbound?count=50&offset=0&{query}", headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


class TestOutboundSearch:
    @pytest.mark.parametrize(
        ("query", "total"),
        [
            ("", 3),
            ("tag=welcome", 2),
            ("recipient=bob@example.net", 1),
            ("recipient=BOB@Example", 1),
            ("recipient=example.net", 3),
            ("recipient=%25", 0),
            ("recipient=_", 0),
            ("subject=PASS", 1),
            ("subject=welcome", 2),
            ("status=queued", 3),
            ("status=sent", 0),
            ("messagestream=broadcast", 1),
            ("fromemail=sender@example.com", 3),
            ("metadata_plan=pro", 1),
            ("fromdate=2000-01-01&todate=2999-12-31", 3),
            ("todate=2000-01-01", 0),
            ("MessageStream=broadcast&Tag=welcome", 1),
        ],
    )
    async def test_filters(self, client: httpx.AsyncClient, server: ServerHandle, query: str, total: int) -> None:
        assert (await search(client, server, query))["TotalCount"] == total

    async def test_total_count_stops_at_the_paging_window(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        # Counting every match costs seconds on millions of messages; no page reaches past 10,000.
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO messages (id, server_id, message_stream, source, status, from_header, from_email, envelope_from, subject,"
                    ' tag, "to", cc, bcc, recipients, metadata, attachments, track_opens, track_links, sandboxed, list_unsubscribe,'
                    " tracked_links, raw_mime)"
                    " SELECT gen_random_uuid(), :sid, 'outbound', 'api', 'Sent', 'x@example.com', 'x@example.com', '', 'Bulk', 'bulk',"
                    " '[]', '[]', '[]', ARRAY['many@example.net'], '{}', '{}', false, 'None', false, false, 0, ''"
                    " FROM generate_series(1, 10005)"
                ),
                {"sid": server.id},
            )
        assert (await search(client, server, "tag=bulk"))["TotalCount"] == 10_000
        assert (await search(client, server, "tag=welcome"))["TotalCount"] == 2
        last = await client.get("/messages/outbound?count=500&offset=9500&tag=bulk", headers=server.headers)
        assert len(last.json()["Messages"]) == 500

    async def test_paging_window_over_10000_returns_700(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/messages/outbound?count=500&offset=9600", headers=server.headers)
        assert response.json()["ErrorCode"] == 700

    async def test_bad_status_returns_700(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/messages/outbound?count=5&offset=0&status=lost", headers=server.headers)
        assert response.json()["ErrorCode"] == 700

    async def test_unknown_message_returns_701(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/messages/outbound/5d1e6a0e-0000-4000-8000-000000000000/details", headers=server.headers)
        assert response.status_code == 404
        assert response.json()["ErrorCode"] == 701

    async def test_other_servers_messages_are_invisible(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        listed = await search(client, server, "")
        message_id = listed["Messages"][0]["MessageID"]  # type: ignore[index]
        other = await create_server(client, "Other")
        response = await client.get(f"/messages/outbound/{message_id}/details", headers=other.headers)
        assert response.status_code == 404
