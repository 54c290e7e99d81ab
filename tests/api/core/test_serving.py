"""The API over real sockets, with the uvicorn options `python -m api_service` uses (core.serving): a 500
is logged once and leaves the keep-alive connection usable; a body over the limit gets its 413; a
half-sent request head or body, or a head too big, no longer holds a connection; and the API says
when the database is reachable again after an outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from api_service.core.errors import DATABASE_OUTAGE
from api_service.core.serving import GuardedHttpProtocol, read_limits
from api_service.db import create_engine, create_sessionmaker
from api_service.servers import repository as servers_repository
from tests.factories import ACCOUNT, create_server

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest_asyncio.fixture
async def port(app: FastAPI) -> AsyncIterator[int]:
    """The test app (its lifespan already running) served by uvicorn in this event loop."""
    number = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=number, lifespan="off", log_config=None, access_log=False, **read_limits())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started
    try:
        yield number
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """One request and its response on an open connection: (status, body)."""
    writer.write(request)
    await writer.drain()
    return await read_response(reader)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout=10)
    return int(lines[0].split()[1]), body


def get(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: postgate.test", *headers, "", ""]).encode()


async def closed_by_server(reader: asyncio.StreamReader, *, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (whatever it wrote before)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:  # reset, or our own unsent bytes failing on the closed socket
        return True
    return True


class TestUnexpectedErrors:
    async def test_a_500_is_logged_once_and_the_connection_stays_usable(
        self, port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def broken(**kwargs: object) -> None:
            raise RuntimeError("servers on fire")

        monkeypatch.setattr(servers_repository, "list_servers", broken)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            with caplog.at_level(logging.INFO):
                token = f"X-Postmark-Account-Token: {ACCOUNT['X-Postmark-Account-Token']}"
                status, failed = await exchange(reader, writer, get("/servers?count=10&offset=0", token))
                assert status == 500
                assert json.loads(failed)["ErrorCode"] == 101
                # The next request on the same connection: it used to be reset.
                status, body = await exchange(reader, writer, get("/health"))
                assert (status, body) == (200, b'{"status":"ok"}')
        finally:
            writer.close()
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1  # the handler's line, not uvicorn's "Exception in ASGI application" too
        error_id = tracebacks[0].__dict__["request_id"]  # the id the client was given, in the log line
        assert json.loads(failed)["Message"].endswith(f"Error ID: {error_id}")
        assert error_id in tracebacks[0].getMessage()


class TestReadLimits:
    async def test_a_body_over_the_limit_gets_its_413(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        size = 20 * 1024 * 1024
        head = (
            "POST /email HTTP/1.1\r\nHost: postgate.test\r\nContent-Type: application/json\r\n"
            f"X-Postmark-Server-Token: POSTMARK_API_TEST\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        writer.write(head)
        chunk = b" " * 65536
        try:
            for _ in range(size // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            status, body = await read_response(reader)
            assert status == 413
            assert b'"ErrorCode":300' in body
            # The whole body was sent: the connection goes on.
            status, _ = await exchange(reader, writer, get("/health"))
            assert status == 200
        finally:
            writer.close()

    async def test_a_half_sent_head_is_closed_after_the_header_timeout(self, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(GuardedHttpProtocol, "header_timeout", 0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: postgate.test\r\n")  # and never the blank line
        await writer.drain()
        try:
            assert await closed_by_server(reader, within=5)
        finally:
            writer.close()

    async def test_an_idle_connection_is_closed_after_the_header_timeout(self, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(GuardedHttpProtocol, "header_timeout", 0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await closed_by_server(reader, within=5)  # not a byte sent
        finally:
            writer.close()

    async def test_a_keep_alive_connection_still_serves_several_requests(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                assert (await exchange(reader, writer, get("/health")))[0] == 200
        finally:
            writer.close()

    async def test_a_head_over_the_size_limit_closes_the_connection(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: postgate.test\r\nX-Pad: ")
        try:
            with contextlib.suppress(ConnectionError):
                for _ in range(64):  # 256 KiB of one header value, never finished
                    writer.write(b"a" * 4096)
                    await writer.drain()
                    await asyncio.sleep(0.005)
            assert await closed_by_server(reader, within=5)
        finally:
            writer.close()

    async def test_a_stalled_body_is_closed_after_the_body_timeout(self, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(GuardedHttpProtocol, "body_idle_timeout", 0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /email HTTP/1.1\r\nHost: postgate.test\r\nContent-Type: application/json\r\n"
            b'X-Postmark-Server-Token: POSTMARK_API_TEST\r\nContent-Length: 1000\r\n\r\n{"From": '
        )
        await writer.drain()
        try:
            assert await closed_by_server(reader, within=5)
        finally:
            writer.close()


class TestOutageLog:
    async def test_health_says_when_the_database_is_reachable_again(
        self, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        unreachable = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1, max_overflow=0)
        DATABASE_OUTAGE.succeeded()  # no outage left over from another test
        caplog.clear()
        try:
            with caplog.at_level(logging.INFO, logger="postgate.api"):
                good, app.state.engine = app.state.engine, unreachable
                try:
                    assert (await client.get("/health")).status_code == 503
                finally:
                    app.state.engine = good
                assert (await client.get("/health")).status_code == 200
        finally:
            await unreachable.dispose()
        lines = [r.getMessage() for r in caplog.records if r.name == "postgate.api"]
        assert any("database is unavailable" in line for line in lines)
        assert any("database is reachable again" in line for line in lines)

    async def test_a_request_that_commits_says_so_too(
        self, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        unreachable = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1, max_overflow=0)
        DATABASE_OUTAGE.succeeded()  # no outage left over from another test
        caplog.clear()
        try:
            with caplog.at_level(logging.INFO, logger="postgate.api"):
                good, app.state.sessionmaker = app.state.sessionmaker, create_sessionmaker(unreachable)
                try:
                    response = await client.post("/servers", json={"Name": "During"}, headers=ACCOUNT)
                    assert response.status_code == 503
                finally:
                    app.state.sessionmaker = good
                await create_server(client, "After")
        finally:
            await unreachable.dispose()
        lines = [r.getMessage() for r in caplog.records if r.name == "postgate.api"]
        assert any("database is unavailable" in line for line in lines)
        assert any("database is reachable again" in line for line in lines)
