"""The send path's token look-up: one query per token however many requests miss the cache together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from api_service.servers.cache import SERVER_SNAPSHOTS
from tests.factories import message, sending_server

pytestmark = pytest.mark.asyncio


@contextmanager
def token_lookups(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "server_tokens" in statement and "token_sha256" in statement:
            seen.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


class TestSendingServer:
    async def test_concurrent_misses_share_one_look_up(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        SERVER_SNAPSHOTS.clear()
        with token_lookups(app) as seen:
            sent = await asyncio.gather(*(client.post("/email", json=message(), headers=server.headers) for _ in range(20)))
        assert [r.status_code for r in sent] == [200] * 20
        assert len(seen) == 1

    async def test_a_wrong_token_is_refused_for_every_waiter(self, client: httpx.AsyncClient) -> None:
        headers = {"X-Postmark-Server-Token": "no-such-token", "Accept": "application/json"}
        sent = await asyncio.gather(*(client.post("/email", json=message(), headers=headers) for _ in range(5)))
        assert {(r.status_code, r.json()["ErrorCode"]) for r in sent} == {(401, 10)}
