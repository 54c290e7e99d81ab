"""Scheduled sending through the Bulk API (beyond Postmark): the request's `SendAt` holds every message it releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from api_service.config import Settings
from tests.api.bulk.conftest import bulk, recipients
from tests.api.bulk.test_tasks import outbound, run_to_end, submit
from tests.factories import ServerHandle

pytestmark = pytest.mark.asyncio


class TestBulkSendAt:
    async def test_every_released_message_is_scheduled(
        self, app: FastAPI, settings: Settings, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        await submit(client, server, bulk(*recipients(3), SendAt=send_at.isoformat()))
        await run_to_end(app, settings)
        found = await outbound(client, server)
        assert [(m["Status"], m["SendAt"]) for m in found] == [("Scheduled", send_at.isoformat().replace("+00:00", "Z"))] * 3

    async def test_too_far_ahead_is_refused_at_submit(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = bulk(*recipients(1), SendAt=(datetime.now(UTC) + timedelta(days=31)).isoformat())
        response = await client.post("/email/bulk", json=body, headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
