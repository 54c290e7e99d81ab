"""HTTP receivers for webhook tests: on any loopback address, answering as told, or trickling."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    """Answers every request with `status`, `location` (for redirects) and after `delay` seconds."""

    url: str
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    location: str = ""
    delay: float = 0.0


@contextlib.contextmanager
def endpoint(host: str = "127.0.0.1") -> Iterator[Endpoint]:
    state = Endpoint(url="")
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))
            stop.wait(state.delay)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://{host}:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def first_endpoint() -> Iterator[Endpoint]:
    with endpoint("127.0.0.1") as running:
        yield running


@pytest.fixture
def second_endpoint() -> Iterator[Endpoint]:
    """A receiver on 127.0.0.2: another loopback address, for allow-lists that name only 127.0.0.1."""
    with endpoint("127.0.0.2") as running:
        yield running


@dataclass
class Trickler:
    url: str
    connections: int = 0


@pytest_asyncio.fixture
async def trickler() -> AsyncIterator[Trickler]:
    """An HTTP server that answers a byte every 0.2 s and never finishes its headers."""
    state = Trickler(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        with contextlib.suppress(OSError, ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    try:
        yield state
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)
