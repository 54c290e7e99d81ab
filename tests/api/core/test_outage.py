"""A database outage: 503 with Postmark's envelope and Retry-After, one log line per interval, and
/health saying only that it is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.config import Settings
from api_service.core.errors import DATABASE_OUTAGE
from api_service.core.outage import OutageLog, database_unavailable
from api_service.main import create_app
from api_service.worker import _loop
from tests.compat.conftest import free_port
from tests.factories import message


@pytest_asyncio.fixture
async def down(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its database gone: nothing listens on the configured port."""
    application: FastAPI = create_app(settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/gone"}))
    DATABASE_OUTAGE.succeeded()  # a fresh outage for this test
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test") as client:
            yield client
    DATABASE_OUTAGE.succeeded()


@pytest.mark.asyncio
class TestApiDuringOutage:
    async def test_send_answers_503_with_retry_after_and_logs_once(self, down: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        headers = {"X-Postmark-Server-Token": "a-token-of-some-server"}
        for _ in range(50):
            response = await down.post("/email", json=message(), headers=headers)
            assert response.status_code == 503
            assert response.json()["ErrorCode"] == 100
            assert "database" in response.json()["Message"]
            assert response.headers["Retry-After"] == "5"
            assert response.headers["X-PM-ApiErrorCode"] == "100"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert errors[0].exc_info is None
        assert "database is unavailable" in errors[0].getMessage()

    async def test_every_route_answers_503_not_500(self, down: httpx.AsyncClient) -> None:
        server = {"X-Postmark-Server-Token": "t"}
        account = {"X-Postmark-Account-Token": "test-account-token"}
        for method, path, headers in (
            ("GET", "/messages/outbound?count=10&offset=0", server),
            ("GET", "/bounces?count=10&offset=0", server),
            ("GET", "/servers?count=10&offset=0", account),
            ("POST", "/email/batch", server),
        ):
            response = await down.request(method, path, headers=headers, json=[message()] if method == "POST" else None)
            assert response.status_code == 503, (path, response.text)

    async def test_health_says_unavailable_and_nothing_more(self, down: httpx.AsyncClient) -> None:
        response = await down.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}


class TestOutageLog:
    def test_one_line_per_interval_and_one_on_recovery(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        outage = OutageLog(logging.getLogger("postgate.test"), what="test", interval=3600)
        for _ in range(1000):
            outage.failed(ConnectionRefusedError(111, "Connect call failed"))
        outage.succeeded()
        assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
        assert "reachable again" in caplog.records[1].getMessage()

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (ConnectionRefusedError(111, "refused"), True),
            (TimeoutError(), True),
            (RuntimeError("wrapped"), False),
            (ValueError("a bug"), False),
        ],
    )
    def test_what_counts_as_an_outage(self, error: BaseException, expected: bool) -> None:
        assert database_unavailable(error) is expected

    def test_an_outage_underneath_another_error_counts(self) -> None:
        outer = RuntimeError("while committing")
        outer.__cause__ = ConnectionResetError(104, "reset")
        assert database_unavailable(outer)


@pytest.mark.asyncio
class TestWorkerLoop:
    async def test_worker_logs_an_outage_once_not_per_poll(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        stop = asyncio.Event()
        calls = 0

        async def step() -> int:
            nonlocal calls
            calls += 1
            if calls >= 200:
                stop.set()
                return 0
            if calls >= 100:
                return 0  # the database is back
            raise ConnectionRefusedError(111, "Connect call failed")

        await asyncio.wait_for(_loop("delivery", step, stop=stop, idle=0), timeout=30)
        records = [r for r in caplog.records if r.name == "postgate.worker"]
        assert [r.levelname for r in records] == ["ERROR", "WARNING"]
        assert all(r.exc_info is None for r in records)
