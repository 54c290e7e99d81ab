"""A real SMTP sink and a real HTTP receiver on loopback, and the worker's steps run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from api_service.config import Settings
from api_service.delivery.service import deliver_batch
from api_service.delivery.transport import Transport, parse_relay
from api_service.main import create_app
from api_service.webhooks.tasks import schedule, send_due, webhook_client
from api_service.worker import OUTCOME_HANDLERS
from tests.compat.conftest import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    """Answers by the recipient's local part: hard… 550 5.1.1, full… 552 5.2.2, temp… 451 once, drop… hangs up,
    slow… takes `slow_seconds` over DATA."""

    received: list[Received] = field(default_factory=list)
    seen_temp: set[str] = field(default_factory=set)
    slow_seconds: float = 2.0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        local = address.split("@")[0].lower()
        if local.startswith("hard"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("full"):
            return "552 5.2.2 Mailbox full"
        if local.startswith("temp") and address not in self.seen_temp:
            self.seen_temp.add(address)
            return "451 4.7.1 Greylisted, try again later"
        if local.startswith("drop"):
            assert server.transport is not None
            server.transport.close()
            return "421 closing"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(str(r).lower().startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(self.slow_seconds)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.original_content or b"")))
        return "250 2.0.0 Ok: queued as SINK1"


@pytest.fixture
def sink() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    hooks: list[Hook]
    statuses: list[int]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server that records each POST and answers the next of `statuses` (then 200)."""
    hooks: list[Hook] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hooks.append(Hook(self.path, dict(self.headers.items()), body))
            status = statuses.pop(0) if statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook", hooks=hooks, statuses=statuses)
    server.shutdown()
    server.server_close()


@dataclass
class Worker:
    app: FastAPI
    settings: Settings
    transport: Transport

    async def deliver(self) -> int:
        return await deliver_batch(sessionmaker=self.app.state.sessionmaker, transport=self.transport, settings=self.settings)

    async def hooks(self, client: httpx.AsyncClient | None = None) -> int:
        """One round of webhook sending, with the worker's own guarded client unless one is given."""
        async with contextlib.AsyncExitStack() as stack:
            if client is None:
                client = webhook_client(self.settings)
                stack.push_async_callback(client.aclose)
            return await send_due(
                sessionmaker=self.app.state.sessionmaker,
                client=client,
                retry_schedule=schedule(self.settings.webhook_retry_schedule),
                deadline=self.settings.webhook_timeout_seconds,
                outcome_handlers=OUTCOME_HANDLERS,
            )


@pytest_asyncio.fixture
async def worker(app: FastAPI, settings: Settings, sink: tuple[SinkHandler, int]) -> AsyncIterator[Worker]:
    worker_settings = settings.model_copy(
        update={
            "outbound_relay": f"smtp://127.0.0.1:{sink[1]}",
            "return_path_domain": "bounces.postgate.test",
            "delivery_retry_first_seconds": 0.0,
            "delivery_retry_horizon_seconds": 3600.0,
            "delivery_lease_seconds": 1.0,
            "webhook_retry_schedule": "0,0,0",
        }
    )
    transport = Transport(relay=parse_relay(worker_settings.outbound_relay), helo=socket.gethostname(), timeout=5)
    yield Worker(app=app, settings=worker_settings, transport=transport)
    transport.close()


@dataclass
class OtherApp:
    """The API with settings of a test's own (say SENDER_AUTO_CONFIRM off), on the same database."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient


MakeApp = Callable[..., Awaitable[OtherApp]]


@pytest_asyncio.fixture
async def other_app(app: FastAPI, settings: Settings) -> AsyncIterator[MakeApp]:
    """`await other_app(sender_auto_confirm=False)`: an app with these settings changed, and a client for it."""
    async with AsyncExitStack() as stack:

        async def make(**changes: Any) -> OtherApp:
            changed = settings.model_copy(update=changes)
            application = create_app(changed)
            await stack.enter_async_context(application.router.lifespan_context(application))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=application), base_url="http://postgate.test", headers={"Accept": "application/json"}
                )
            )
            return OtherApp(app=application, settings=changed, client=client)

        yield make
