"""Named, scoped, expiring, revocable server and account tokens over the API."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from api_service.db import create_engine, create_sessionmaker
from api_service.errors import PostmarkError
from api_service.models import AccountToken, ServerToken
from api_service.servers import token_service
from api_service.servers.cache import SERVER_SNAPSHOTS, ServerSnapshot
from shared.constants import TokenScope
from tests.factories import ACCOUNT, ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio


async def make_token(app: FastAPI, server: ServerHandle, name: str, scope: TokenScope = TokenScope.FULL) -> ServerHandle:
    async with app.state.sessionmaker() as session, session.begin():
        created = await token_service.create_server_token(session=session, server_id=server.id, name=name, scope=scope)
    return ServerHandle(id=server.id, token=created.token)


async def revoke(app: FastAPI, server: ServerHandle, name: str) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        await token_service.revoke_server_token(session=session, server_id=server.id, name=name)


class TestServerTokens:
    async def test_second_token_works_and_revocation_is_immediate(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        second = await make_token(app, server, "ci")
        assert (await client.post("/email", json=message(), headers=second.headers)).status_code == 200  # cached for the send path
        shown = (await client.get("/server", headers=second.headers)).json()["ApiTokens"]
        assert shown == [f"********-****-****-****-********{server.token[-4:]}", second.token]
        await revoke(app, server, "ci")
        refused = await client.post("/email", json=message(), headers=second.headers)
        assert (refused.status_code, refused.json()["ErrorCode"]) == (401, 10)
        assert (await client.get("/server", headers=second.headers)).status_code == 401
        assert (await client.post("/email", json=message(), headers=server.headers)).status_code == 200

    async def test_send_scope_sends_and_nothing_else(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        sender = await make_token(app, server, "mailer", TokenScope.SEND)
        assert (await client.post("/email", json=message(), headers=sender.headers)).status_code == 200
        assert (await client.post("/email/batch", json=[message()], headers=sender.headers)).status_code == 200
        for method, path in (("GET", "/server"), ("GET", "/messages/outbound?count=10&offset=0"), ("PUT", "/server")):
            refused = await client.request(method, path, json={"Color": "red"} if method == "PUT" else None, headers=sender.headers)
            assert refused.status_code == 403, (method, path)
            assert refused.json()["ErrorCode"] == 1470

    async def test_read_scope_reads_only(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        reader = await make_token(app, server, "dashboard", TokenScope.READ)
        assert (await client.get("/server", headers=reader.headers)).status_code == 200
        assert (await client.get("/messages/outbound?count=10&offset=0", headers=reader.headers)).status_code == 200
        for path in ("/email", "/email/batch"):
            assert (await client.post(path, json=message(), headers=reader.headers)).json()["ErrorCode"] == 1470
        assert (await client.put("/server", json={"Color": "red"}, headers=reader.headers)).status_code == 403

    async def test_expired_token_is_refused(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        old = await make_token(app, server, "old")
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(ServerToken).where(ServerToken.name == "old").values(expires_at=ServerToken.created_at))
        refused = await client.get("/server", headers=old.headers)
        assert (refused.status_code, refused.json()["ErrorCode"]) == (401, 10)

    async def test_last_use_is_recorded_once_a_minute(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        used = await make_token(app, server, "used")
        await client.get("/server", headers=used.headers)
        async with app.state.sessionmaker() as session:
            row = (await session.execute(select(ServerToken).where(ServerToken.name == "used"))).scalar_one()
        assert row.last_used_at is not None
        assert row.last_used_ip == "127.0.0.1"
        await client.get("/server", headers=used.headers)
        async with app.state.sessionmaker() as session:
            again = (await session.execute(select(ServerToken).where(ServerToken.name == "used"))).scalar_one()
        assert again.last_used_at == row.last_used_at

    async def test_names_are_unique_per_server_and_checked(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        async with app.state.sessionmaker() as session, session.begin():
            with pytest.raises(PostmarkError, match="already has a token"):
                await token_service.create_server_token(session=session, server_id=server.id, name="DEFAULT")
            with pytest.raises(PostmarkError, match="Name"):
                await token_service.create_server_token(session=session, server_id=server.id, name="")
            with pytest.raises(PostmarkError, match="future"):
                token_service.parse_expiry("2001-01-01")


class TestAccountTokens:
    async def test_named_account_token_beside_the_setting(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            full = await token_service.create_account_token(session=session, name="terraform")
            read = await token_service.create_account_token(session=session, name="monitoring", scope=TokenScope.READ)
        headers = {"X-Postmark-Account-Token": full.token}
        assert (await client.post("/servers", json={"Name": "By terraform"}, headers=headers)).status_code == 200
        reader = {"X-Postmark-Account-Token": read.token}
        assert (await client.get("/servers?count=10&offset=0", headers=reader)).status_code == 200
        refused = await client.post("/servers", json={"Name": "No"}, headers=reader)
        assert (refused.status_code, refused.json()["ErrorCode"]) == (403, 1470)
        async with app.state.sessionmaker() as session, session.begin():
            await token_service.revoke_account_token(session=session, name="terraform")
        gone = await client.get("/servers?count=10&offset=0", headers=headers)
        assert (gone.status_code, gone.json()["ErrorCode"]) == (401, 10)
        assert (await client.get("/servers?count=10&offset=0", headers=ACCOUNT)).status_code == 200
        async with app.state.sessionmaker() as session:
            used = (await session.execute(select(AccountToken).where(AccountToken.name == "monitoring"))).scalar_one()
        assert used.last_used_at is not None


class TestRevocationAcrossProcesses:
    async def test_a_revocation_announced_elsewhere_empties_this_process_cache(self, app: FastAPI, database_url: str) -> None:
        SERVER_SNAPSHOTS._entries["digest"] = (time.monotonic() + 3600, ServerSnapshot(1, False, "None", "Live", False))
        other = create_engine(database_url, pool_size=1, max_overflow=0)  # as another API process or the CLI would
        try:
            async with create_sessionmaker(other)() as session, session.begin():
                await session.execute(text("SELECT pg_notify('postgate_token_revoked', '')"))
        finally:
            await other.dispose()
        deadline = time.monotonic() + 5
        while SERVER_SNAPSHOTS.get("digest") is not None:
            assert time.monotonic() < deadline, "the announcement was not heard"
            await asyncio.sleep(0.02)
