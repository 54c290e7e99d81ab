from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from api_service.core import wire
from api_service.core.wire import is_exempt
from tests.factories import ACCOUNT, message, sending_server

pytestmark = pytest.mark.asyncio


class TestWireRules:
    async def test_paths_and_query_keys_are_case_insensitive_and_slash_tolerant(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        assert (await client.post("/Email/", json=message(), headers=server.headers)).status_code == 200
        response = await client.get("/Messages/Outbound/?Count=5&Offset=0&MessageStream=outbound", headers=server.headers)
        assert response.status_code == 200
        assert response.json()["TotalCount"] == 1

    async def test_unknown_endpoint_answers_postmark_envelope(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/no/such/thing")
        assert response.status_code == 404
        assert set(response.json()) == {"ErrorCode", "Message"}

    async def test_errors_carry_x_pm_apierrorcode(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/server")
        assert response.status_code == 401
        assert response.headers["X-PM-ApiErrorCode"] == "10"
        assert "detail" not in response.json()

    async def test_body_that_is_not_an_object_returns_402(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.post("/email", json=["not", "an", "object"], headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 402


class TestLargeBodies:
    async def test_large_bodies_wait_their_turn_unread_while_small_requests_go_on(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server = await sending_server(client)
        gate = asyncio.Semaphore(1)
        monkeypatch.setattr(wire, "LARGE_BODIES", gate)
        monkeypatch.setattr(wire, "LARGE_BODY_BYTES", 1000)
        batch = [message(TextBody="x" * 2000)]
        await gate.acquire()  # another large body is being parsed
        waiting = asyncio.create_task(client.post("/email/batch", json=batch, headers=server.headers))
        small = await client.post("/email", json=message(), headers=server.headers)
        assert small.status_code == 200
        assert (await client.get("/health")).status_code == 200
        await asyncio.sleep(0.2)
        assert not waiting.done()
        gate.release()
        answer = await asyncio.wait_for(waiting, 10)
        assert answer.status_code == 200
        assert answer.json()[0]["ErrorCode"] == 0


class TestHealthAndDocs:
    async def test_health_is_200_when_database_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_openapi_lists_endpoints_with_examples(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        for path in (
            "/email",
            "/email/batch",
            "/server",
            "/servers",
            "/senders",
            "/domains",
            "/bounces",
            "/deliverystats",
            "/messages/outbound",
        ):
            assert path in spec["paths"], path
        assert spec["components"]["schemas"]["EmailRequest"]["examples"]
        assert (await client.get("/docs")).status_code == 200


class TestTransactions:
    # Single sends are grouped with others (email.intake), with a key or without.
    @pytest.mark.parametrize("extra_headers", [{}, {"Idempotency-Key": "k-1"}], ids=["grouped", "idempotent"])
    async def test_failing_commit_returns_500_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, extra_headers: dict[str, str]
    ) -> None:
        server = await sending_server(client)
        # A deferred constraint trigger makes PostgreSQL itself refuse the COMMIT.
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'commit refused by test'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON messages "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()"
                )
            )
        # The server error middleware re-raises after answering; a real server logs it.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test") as raw_client:
                response = await raw_client.post("/email", json=message(), headers=server.headers | extra_headers)
        finally:
            async with app.state.engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER refuse_commit ON messages"))
                await conn.execute(text("DROP FUNCTION refuse_commit()"))
        assert response.status_code == 500
        assert response.json()["ErrorCode"] == 101
        listed = await client.get("/messages/outbound?count=5&offset=0", headers=server.headers)
        assert listed.json()["TotalCount"] == 0


class TestFuzzRegressions:
    """Inputs schemathesis found that used to reach the database and answer 500."""

    @pytest.mark.parametrize(
        ("path", "token"),
        [
            ("/servers/71571925451095312171008", "account"),
            ("/bounces/42057163645375166594154496", "server"),
            ("/domains?count=5&offset=11675253958728633680392757968526901248", "account"),
        ],
    )
    async def test_numbers_beyond_bigint_are_client_errors(self, client: httpx.AsyncClient, path: str, token: str) -> None:
        server = await sending_server(client)
        headers = ACCOUNT if token == "account" else server.headers
        response = await client.get(path, headers=headers)
        assert response.status_code == 422
        assert set(response.json()) == {"ErrorCode", "Message"}


class TestConsoleExemption:
    """The console's form posts pass the wire middleware; the API's rules are unchanged."""

    async def test_api_still_refuses_a_form_body_with_415(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.post("/email", data={"From": "sender@example.com"}, headers=server.headers)
        assert response.status_code == 415
        assert response.json()["ErrorCode"] == 409

    async def test_api_paths_are_still_lower_cased(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        assert (await client.get("/SERVER/", headers=server.headers)).status_code == 200

    async def test_console_form_post_is_not_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/console/sign-in", data={"username": "admin", "password": "x"})
        assert response.status_code == 400  # the console's own answer: the form's CSRF token is missing
        assert "text/html" in response.headers["content-type"]

    async def test_console_body_size_limit_still_applies(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/console/sign-in", content=b"x", headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(10**9)}
        )
        assert response.status_code == 413


class TestConfirmationPageExemption:
    """Only the pages under /confirm/sender/ skip the wire rules (their tokens keep their case)."""

    async def test_only_paths_under_the_prefix_are_exempt(self) -> None:
        assert is_exempt("/confirm/sender/AbC-123")
        assert not is_exempt("/confirm/sender")
        assert not is_exempt("/confirm")
        assert not is_exempt("/confirm/senders/x")
        assert not is_exempt("/senders/1")

    async def test_a_form_post_reaches_the_page(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/confirm/sender/Unknown", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
