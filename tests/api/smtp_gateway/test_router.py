"""/internal/smtp/*: only the SMTP gateway, with the internal token, gets an answer (issue 22, row 8)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.config import Settings
from api_service.main import create_app
from shared.schemas.smtp import (
    SMTP_AUTH_BATCH_PATH,
    SMTP_AUTH_PATH,
    SMTP_BATCH_CONTENT_TYPE,
    SMTP_BATCH_PATH,
    SMTP_SUBMIT_PATH,
    SmtpBatchEnvelope,
    SmtpBatchMessage,
    encode_smtp_batch,
)
from tests.factories import ACCOUNT, INTERNAL, ServerHandle, create_server, sending_server

pytestmark = pytest.mark.asyncio

RAW = b"From: sender@example.com\r\nTo: to@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
SEPARATE = "a-separate-internal-token-0123456789"


def requests(server: ServerHandle) -> list[tuple[str, dict[str, Any]]]:
    """A request the gateway could make to each /internal/smtp/* endpoint, without its credential."""
    envelope = SmtpBatchEnvelope(Token=server.token, MailFrom="sender@example.com", RcptTo=["to@example.net"], Size=len(RAW))
    submission = {"MailFrom": "sender@example.com", "RcptTo": ["to@example.net"], "RawMessage": base64.b64encode(RAW).decode()}
    return [
        (SMTP_AUTH_PATH, {"headers": server.headers}),
        (SMTP_AUTH_BATCH_PATH, {"json": {"Tokens": [server.token, "bogus"]}}),
        (SMTP_SUBMIT_PATH, {"json": submission, "headers": server.headers}),
        (
            SMTP_BATCH_PATH,
            {
                "content": encode_smtp_batch([SmtpBatchMessage(envelope=envelope, raw=RAW)]),
                "headers": {"Content-Type": SMTP_BATCH_CONTENT_TYPE},
            },
        ),
    ]


def assert_refused(response: httpx.Response) -> None:
    """401 in Postmark's shape, with nothing about any server in it."""
    assert response.status_code == 401, response.text
    assert response.json() == {"ErrorCode": 10, "Message": response.json()["Message"]}
    assert "internal token" in response.json()["Message"]
    assert "ServerID" not in response.text
    assert "Verdicts" not in response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest_asyncio.fixture
async def other(app: FastAPI, settings: Settings) -> AsyncIterator[Any]:
    """`async with other(client_ip, **settings)`: the API with other settings, seen from another address."""

    @asynccontextmanager
    async def make(client_ip: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(settings.model_copy(update=overrides))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=(client_ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test") as c:
                yield c

    yield make


class TestAuthBatch:
    async def test_without_the_internal_token_nothing_is_said_about_any_token(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token, "bogus"]})
        assert_refused(response)

    async def test_the_account_tokens_header_is_not_the_gateways_credential(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        assert_refused(await client.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}, headers=ACCOUNT))
        assert_refused(await client.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}, headers={"Authorization": "Bearer wrong"}))

    async def test_with_the_internal_token_it_answers_per_token(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token, "bogus"]}, headers=INTERNAL)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "Verdicts": [{"ServerID": server.id, "SmtpApiActivated": False}, {"ServerID": None, "SmtpApiActivated": False}]
        }

    async def test_a_strangers_malformed_body_is_still_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(SMTP_AUTH_BATCH_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
        assert_refused(response)


class TestEveryInternalEndpoint:
    async def test_each_refuses_a_request_without_the_internal_token(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        for path, request in requests(server):
            assert_refused(await client.post(path, **request))

    async def test_a_separate_internal_token_replaces_the_account_token(self, client: httpx.AsyncClient, other: Any) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        async with other("198.51.100.20", internal_token=SEPARATE) as separate:
            assert_refused(await separate.post(SMTP_AUTH_PATH, headers=server.headers | INTERNAL))
            answer = await separate.post(SMTP_AUTH_PATH, headers=server.headers | {"Authorization": f"Bearer {SEPARATE}"})
        assert answer.status_code == 200
        assert answer.json() == {"ServerID": server.id, "SmtpApiActivated": True}

    async def test_without_any_token_configured_everything_is_refused(self, client: httpx.AsyncClient, other: Any) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        async with other("198.51.100.21", account_token="", internal_token="") as unconfigured:
            assert_refused(
                await unconfigured.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}, headers={"Authorization": "Bearer "})
            )


class TestSingleAndBatchAuth:
    async def test_both_give_the_same_verdicts(self, client: httpx.AsyncClient) -> None:
        on = await create_server(client, "On", SmtpApiActivated=True)
        off = await create_server(client, "Off", SmtpApiActivated=False)
        tokens = [on.token, f"  {on.token.upper()} ", off.token, "bogus"]
        batch = await client.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": tokens}, headers=INTERNAL)
        single = [await client.post(SMTP_AUTH_PATH, headers={"X-Postmark-Server-Token": t} | INTERNAL) for t in tokens]
        from_batch = [(v["ServerID"], v["SmtpApiActivated"]) for v in batch.json()["Verdicts"]]
        from_single = [(r.json()["ServerID"], r.json()["SmtpApiActivated"]) if r.status_code == 200 else (None, False) for r in single]
        assert from_batch == from_single == [(on.id, True), (on.id, True), (off.id, False), (None, False)]
        assert single[3].status_code == 401


class TestRefusalsAreLimited:
    async def test_an_address_guessing_the_internal_token_gets_429(self, client: httpx.AsyncClient, other: Any) -> None:
        server = await sending_server(client)
        async with other("203.0.113.9") as stranger:
            answers = [
                await stranger.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}, headers={"Authorization": f"Bearer guess-{i}"})
                for i in range(15)
            ]
            # The gateway's own calls from that address are not held back by a stranger's refusals.
            gateway = await stranger.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}, headers=INTERNAL)
        statuses = [a.status_code for a in answers]
        assert statuses[:10] == [401] * 10
        assert set(statuses[10:]) <= {401, 429}
        assert statuses[10:].count(429) >= 4  # one a second after the first ten
        limited = answers[statuses.index(429)]
        assert limited.json()["ErrorCode"] == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "ServerID" not in limited.text
        assert gateway.status_code == 200
        async with other("203.0.113.10") as elsewhere:  # per address: another one is not refused for it
            assert_refused(await elsewhere.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": [server.token]}))

    async def test_no_limit_when_rate_limits_are_off(self, client: httpx.AsyncClient, other: Any) -> None:
        async with other("203.0.113.11", rate_limit_enabled=False) as stranger:
            statuses = {(await stranger.post(SMTP_AUTH_BATCH_PATH, json={"Tokens": ["x"]})).status_code for _ in range(12)}
        assert statuses == {401}
