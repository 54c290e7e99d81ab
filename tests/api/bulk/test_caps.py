"""Entries per bulk request are capped, the unauthenticated test token's far lower (issue 22 row 3); expanding
heavy content in the worker is budgeted and leaves the event loop (row 2).

The attack: `POSTMARK_API_TEST` (no account needed; it previews) with 500,000 entries in 12.5 MB took 11 s and
430 MB of the API's memory, and a 50 MB body would have taken about 1.7 GB.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from api_service.bulk.tasks import expand_due
from api_service.config import Settings
from shared.constants import MAX_BULK_ENTRIES, MAX_BULK_TEST_BYTES, MAX_BULK_TEST_ENTRIES, ErrorCode
from tests.api.bulk.conftest import bulk, recipients
from tests.api.templates.test_budget import HEAVY, HEAVY_MODEL, while_health_answers
from tests.factories import ServerHandle

pytestmark = pytest.mark.asyncio
TEST = ServerHandle(id=0, token="POSTMARK_API_TEST")


def small_entries(count: int) -> list[dict[str, Any]]:
    return [{"To": f"u{i}@example.net"} for i in range(count)]


async def post(client: httpx.AsyncClient, server: ServerHandle, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/email/bulk", json=body, headers=server.headers)


async def stored(client: httpx.AsyncClient, server: ServerHandle) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = (await client.get("/email/bulk", headers=server.headers)).json()["Requests"]
    return requests


class TestTheTestToken:
    async def test_up_to_the_cap_is_previewed(self, client: httpx.AsyncClient) -> None:
        response = await post(client, TEST, bulk(*recipients(MAX_BULK_TEST_ENTRIES)))
        assert response.status_code == 200, response.text
        assert response.json()["TotalMessages"] == MAX_BULK_TEST_ENTRIES

    async def test_one_entry_over_the_cap_is_410(self, client: httpx.AsyncClient) -> None:
        response = await post(client, TEST, bulk(*recipients(MAX_BULK_TEST_ENTRIES + 1)))
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == ErrorCode.TOO_MANY_BATCH_MESSAGES
        assert response.headers["X-PM-ApiErrorCode"] == "410"
        assert f"at most {MAX_BULK_TEST_ENTRIES}" in response.json()["Message"]

    async def test_the_attackers_body_is_refused_by_its_size_before_it_is_parsed(self, client: httpx.AsyncClient) -> None:
        body = bulk(*small_entries(60_000))  # about 1.5 MB
        assert len(orjson.dumps(body)) > MAX_BULK_TEST_BYTES
        response = await post(client, TEST, body)
        assert response.status_code == 413, response.text
        assert response.json()["ErrorCode"] == ErrorCode.TOO_MANY_BATCH_MESSAGES
        assert "POSTMARK_API_TEST" in response.json()["Message"]

    async def test_a_body_without_a_length_is_measured_too(self, client: httpx.AsyncClient) -> None:
        raw = orjson.dumps(bulk(*small_entries(60_000)))

        async def chunks() -> Any:
            for start in range(0, len(raw), 64 * 1024):
                yield raw[start : start + 64 * 1024]

        response = await client.post("/email/bulk", content=chunks(), headers=TEST.headers | {"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert response.json()["ErrorCode"] == ErrorCode.TOO_MANY_BATCH_MESSAGES


class TestARealToken:
    async def test_one_entry_over_the_cap_is_410_and_nothing_is_stored(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await post(client, server, bulk(*small_entries(MAX_BULK_ENTRIES + 1)))
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == ErrorCode.TOO_MANY_BATCH_MESSAGES
        assert f"at most {MAX_BULK_ENTRIES:,} entries" in response.json()["Message"]
        assert await stored(client, server) == []

    async def test_the_cap_itself_is_accepted(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await post(client, server, bulk(*small_entries(MAX_BULK_ENTRIES)))
        assert response.status_code == 200, response.text
        assert response.json()["TotalMessages"] == MAX_BULK_ENTRIES


class TestHeavyContentInTheWorker:
    async def test_entries_over_the_work_budget_fail_and_health_answers(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, settings: Settings
    ) -> None:
        entries = [
            {"To": "ann@example.net", "TemplateModel": HEAVY_MODEL},
            {"To": "bob@example.net", "TemplateModel": {"a": []}},
            {"To": "carol@example.net", "TemplateModel": HEAVY_MODEL},
        ]
        response = await post(client, server, bulk(*entries, HtmlBody=HEAVY))
        assert response.status_code == 200, response.text

        async def run_to_end() -> httpx.Response:
            while await expand_due(sessionmaker=app.state.sessionmaker, settings=settings):
                pass
            return await client.get(f"/email/bulk/{response.json()['Id']}", headers=server.headers)

        done = (await while_health_answers(client, run_to_end())).json()
        assert (done["Status"], done["ReleasedCount"], done["FailedCount"]) == ("Completed", 1, 2)
