"""A live API on a loopback port (uvicorn in a thread), for real clients: postmarker, and postmark.js through Node."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.config import Settings
from api_service.db import async_database_url
from api_service.main import create_app
from api_service.models import Base
from smtp_service.config import SmtpSettings
from smtp_service.server import serve
from tests.api.core.dns_server import Zone, dns_server
from tests.compat.factories import Sink
from tests.compat.js_client import NodeDriver, PostmarkJs, PostmarkJsServer, node_unavailable_reason
from tests.conftest import ACCOUNT_TOKEN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The DNS server each live API asks (its `host:port` is DNS_RESOLVER), by the API's URL: verifying a
# domain never leaves loopback. Kept here rather than in a fixture of its own, because other test
# packages import `live_api` alone.
DNS_SERVERS: dict[str, tuple[Zone, str]] = {}


@pytest.fixture(scope="module")
def live_api(settings: Settings) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dns_server() as dns:
        app = create_app(settings.model_copy(update={"dns_resolver": dns[1]}))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        DNS_SERVERS[url] = dns
        try:
            yield url
        finally:
            del DNS_SERVERS[url]
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def compat_dns(live_api: str) -> tuple[Zone, str]:
    """The live API's DNS server: publish records in its zone."""
    return DNS_SERVERS[live_api]


@pytest.fixture
def clean_live_api(live_api: str, database_url: str) -> Iterator[str]:
    """The live API on an empty database, emptied again afterwards (modules before may leave rows)."""

    async def truncate() -> None:
        engine = create_async_engine(async_database_url(database_url))
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())
    yield live_api
    asyncio.run(truncate())


@pytest.fixture(scope="module")
def mx_port(live_api: str) -> Iterator[int]:
    """The port of the gateway's MX listener (inbound mail) in front of the live API."""
    settings = SmtpSettings(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_inbound_port=free_port(),
        api_url=live_api,
        api_timeout_seconds=10,
        account_token=ACCOUNT_TOKEN,
        smtp_inbound_cache_seconds=0,
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def started(servers: object) -> None:
        ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve(settings, started=started, stop=stop)), daemon=True)
    thread.start()
    assert ready.wait(10), "the MX listener did not start"
    yield settings.smtp_inbound_port
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="session")
def postmark_js_driver() -> Iterator[NodeDriver]:
    reason = node_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    driver = NodeDriver()
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def postmark_js(postmark_js_driver: NodeDriver, clean_live_api: str) -> PostmarkJs:
    """postmark.js pointed at the live API, on a clean database."""
    return PostmarkJs(postmark_js_driver, clean_live_api)


@pytest.fixture
def js_server(postmark_js: PostmarkJs) -> PostmarkJsServer:
    """A server named "Compat" with the confirmed sender app@compat.example, both created through postmark.js."""
    created = postmark_js.call("account", ACCOUNT_TOKEN, "createServer", {"Name": "Compat"})
    server = PostmarkJsServer(js=postmark_js, id=created["ID"], token=created["ApiTokens"][0], account_token=ACCOUNT_TOKEN)
    server.account("createSenderSignature", {"FromEmail": "app@compat.example", "Name": "App"})
    return server


@pytest.fixture
def recording_sink() -> Iterator[tuple[Sink, int]]:
    """A loopback SMTP server (`factories.Sink`) and its port, to read what was delivered."""
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest.fixture
def smtp_sink() -> Iterator[int]:
    """The port of a loopback SMTP server (`factories.Sink`) for `deliver_queued` to relay to."""
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()
