"""Rate limits, /metrics and the request log line, in process (the app over ASGI, a real database)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api_service.config import Settings
from api_service.main import create_app
from tests.factories import ACCOUNT, INTERNAL, create_server, message, sending_server

pytestmark = pytest.mark.asyncio
SLOW = 0.001
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in exposition text; 0 when it is not there."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@pytest.fixture
def make_client(app: FastAPI, settings: Settings) -> MakeClient:
    """Another app on the same database with other settings (`app` is requested so tables are cleaned)."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        other = create_app(settings.model_copy(update=overrides))
        async with other.router.lifespan_context(other):
            transport = httpx.ASGITransport(app=other)
            async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test", headers={"Accept": "application/json"}) as c:
                yield c

    return make


class TestRateLimits:
    async def test_a_server_token_over_its_burst_gets_429_with_retry_after(
        self, client: httpx.AsyncClient, make_client: MakeClient
    ) -> None:
        busy, other = await sending_server(client), await create_server(client, "Other")
        async with make_client(rate_limit_server_burst=3, rate_limit_server_per_second=SLOW) as limited:
            answers = [await limited.post("/email", json=message(), headers=busy.headers) for _ in range(5)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
            refused = answers[3]
            assert refused.json()["ErrorCode"] == 429
            assert "Rate limit exceeded" in refused.json()["Message"]
            assert refused.headers["X-PM-ApiErrorCode"] == "429"
            assert int(refused.headers["Retry-After"]) >= 999  # one token every 1000 s
            assert (await limited.post("/email", json=message(), headers=other.headers)).status_code == 200

    async def test_the_account_token_has_its_own_limit(self, client: httpx.AsyncClient, make_client: MakeClient) -> None:
        async with make_client(rate_limit_account_burst=2, rate_limit_account_per_second=SLOW) as limited:
            statuses = [(await limited.get("/servers?count=10&offset=0", headers=ACCOUNT)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]

    async def test_limits_can_be_turned_off(self, client: httpx.AsyncClient, make_client: MakeClient) -> None:
        server = await sending_server(client)
        async with make_client(rate_limit_enabled=False, rate_limit_server_burst=1, rate_limit_server_per_second=SLOW) as limited:
            statuses = [(await limited.post("/email", json=message(), headers=server.headers)).status_code for _ in range(4)]
        assert statuses == [200] * 4

    async def test_internal_routes_have_their_own_bucket_far_above_a_clients(
        self, client: httpx.AsyncClient, make_client: MakeClient
    ) -> None:
        server = await sending_server(client)
        async with make_client(rate_limit_server_burst=1, rate_limit_server_per_second=SLOW) as limited:
            statuses = [(await limited.post("/internal/smtp/auth", headers=server.headers | INTERNAL)).status_code for _ in range(3)]
        assert statuses == [200] * 3  # the server token's own limit does not apply to the gateway's check

    async def test_internal_routes_are_limited_per_credential(self, client: httpx.AsyncClient, make_client: MakeClient) -> None:
        server = await sending_server(client)
        report = {"RcptTo": ["nobody@example.net"], "RawMessage": "", "MailFrom": ""}
        async with make_client(rate_limit_internal_burst=2, rate_limit_internal_per_second=SLOW) as limited:
            auth = [(await limited.post("/internal/smtp/auth", headers=server.headers | INTERNAL)).status_code for _ in range(3)]
            reports = [(await limited.post("/internal/bounce-reports", json=report, headers=ACCOUNT)).status_code for _ in range(3)]
            stranger = await limited.post("/internal/bounce-reports", json=report, headers={"X-Postmark-Account-Token": "guess"})
        assert auth == [200, 200, 429]
        assert 429 not in reports[:2]
        assert reports[2] == 429
        assert stranger.status_code == 401  # a stranger's guesses fill a bucket of their own


class TestMetrics:
    async def test_a_metrics_token_is_required_when_set(self, make_client: MakeClient) -> None:
        async with make_client(metrics_token="scrape-secret") as c:
            assert (await c.get("/metrics")).status_code == 401
            assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
            answer = await c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert sample(answer.text, "postgate_database_up") == 1

    async def test_counts_requests_and_reads_the_queue_from_postgresql(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        before = (await client.get("/metrics")).text
        for _ in range(2):
            sent = await client.post("/email", json=message(To="a@example.net, b@example.net"), headers=server.headers)
            assert sent.status_code == 200
        await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)
        after = (await client.get("/metrics")).text
        requests = "postgate_http_requests_total"
        assert (
            sample(after, requests, method="POST", route="/email", status="200")
            == sample(before, requests, method="POST", route="/email", status="200") + 2
        )
        assert sample(after, requests, method="GET", route="/messages/outbound/{message_id}/details", status="200") >= 1
        assert sample(after, "postgate_http_request_duration_seconds_count", method="POST", route="/email") >= 2
        assert sample(after, "postgate_messages_accepted_total", source="api") >= 2
        assert sample(after, "postgate_queue_depth") == 4
        assert sample(after, "postgate_queue_due") == 4
        assert sample(after, "postgate_queue_oldest_due_age_seconds") >= 0
        assert sample(after, "postgate_webhook_outbox_depth") == 0
        assert sample(after, "postgate_db_pool_connections", state="max") == 10
        names = {f.name for f in text_string_to_metric_families(after)}
        assert all(name.startswith("postgate_") for name in names)


class TestRequestLog:
    async def test_one_line_per_request_with_route_status_and_server_and_never_the_token(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        server = await sending_server(client)
        with caplog.at_level(logging.INFO):
            sent = await client.post("/email", json=message(), headers=server.headers)
            await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)
            await client.get("/no/such/thing", headers=server.headers)
            await client.get("/console/static/console.css")
        lines = [r for r in caplog.records if r.name == "postgate.access"]
        assert [(r.__dict__["route"], r.__dict__["status"], r.__dict__["server_id"]) for r in lines] == [
            ("/email", 200, server.id),
            ("/messages/outbound/{message_id}/details", 200, server.id),
            ("unmatched", 404, None),
            ("/console/static", 200, None),
        ]
        assert all(r.__dict__["duration_ms"] >= 0 for r in lines)
        everything = caplog.text + repr([r.__dict__ for r in caplog.records])
        assert server.token not in everything
