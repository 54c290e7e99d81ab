"""The real gateway on loopback: the API (uvicorn, in a thread), a TCP relay in front of it that a
test can cut, and the SMTP server on its own event loop in another thread."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from smtp_service.config import SmtpSettings
from smtp_service.server import serve
from tests.compat.conftest import clean_live_api, free_port, live_api
from tests.conftest import ACCOUNT_TOKEN

__all__ = ["clean_live_api", "live_api"]


class Relay:
    """A TCP forwarder to the API that can be switched off, as if api_service went down."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.up = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._connections |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop).result(5)

    def cut(self) -> None:
        """Refuse new connections and drop open ones."""
        self.up = False

        def drop() -> None:
            for writer in self._connections:
                writer.close()
            self._connections.clear()

        self._loop.call_soon_threadsafe(drop)

    def restore(self) -> None:
        self.up = True

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for writer in self._connections:
                writer.close()
            await self._server.wait_closed()

        self.up = False
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@dataclass
class Gateway:
    port: int
    tls_port: int
    relay: Relay
    settings: SmtpSettings


def self_signed(directory: Path) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(live_api, tmp_path_factory)


@pytest.fixture(scope="module")
def batching_gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that hands over one call at a time and waits 50 ms for company: concurrent
    submissions are sure to share a call."""
    yield from _gateway(live_api, tmp_path_factory, smtp_batch_in_flight=1, smtp_batch_window_ms=50)


@pytest.fixture(scope="module")
def trusting_gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose MX listener trusts the X-Spam-* headers of loopback (a spam filter's hop)."""
    yield from _gateway(live_api, tmp_path_factory, smtp_inbound_trusted_filters="127.0.0.0/8")


@pytest.fixture(scope="module")
def big_gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that takes messages of up to 2 MB."""
    yield from _gateway(live_api, tmp_path_factory, smtp_max_message_bytes=2_000_000)


@pytest.fixture(scope="module")
def limited_gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose MX listener allows each client IP 3 connections, 2 messages and 300 kB a minute."""
    yield from _gateway(
        live_api,
        tmp_path_factory,
        smtp_inbound_ip_connections_per_minute=3,
        smtp_inbound_ip_messages_per_minute=2,
        smtp_inbound_ip_bytes_per_minute=300_000,
    )


def _gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> Iterator[Gateway]:
    relay = Relay(int(live_api.rsplit(":", 1)[1]))
    relay.start()
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    options: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": free_port(),
        "smtp_tls_port": free_port(),
        "smtp_tls_cert": cert,
        "smtp_tls_key": key,
        "api_url": f"http://127.0.0.1:{relay.port}",
        "api_timeout_seconds": 5,
        "smtp_ip_auth_failures": 0,
        "smtp_max_message_bytes": 200_000,
        "smtp_inbound_port": free_port(),
        "return_path_domain": "bounces.postgate.test",
        "account_token": ACCOUNT_TOKEN,
        "smtp_inbound_cache_seconds": 0,
    }
    settings = SmtpSettings(**{**options, **overrides})
    loop = uvloop.new_event_loop()  # the loop `python -m smtp_service` runs on
    stop = asyncio.Event()
    ready = threading.Event()

    async def started(servers: object) -> None:
        ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve(settings, started=started, stop=stop)), daemon=True)
    thread.start()
    assert ready.wait(10), "SMTP gateway did not start"
    yield Gateway(port=settings.smtp_port, tls_port=settings.smtp_tls_port, relay=relay, settings=settings)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()
    relay.stop()


@dataclass
class SmtpServerHandle:
    id: int
    token: str
    headers: dict[str, str]


@pytest.fixture
def smtp_server(clean_live_api: str) -> SmtpServerHandle:
    """A server with SMTP enabled and the sender signature sender@example.com."""
    account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
    created = httpx.post(f"{clean_live_api}/servers", json={"Name": "SMTP", "SmtpApiActivated": True}, headers=account)
    assert created.status_code == 200, created.text
    httpx.post(f"{clean_live_api}/senders", json={"FromEmail": "sender@example.com", "Name": "Sender"}, headers=account).raise_for_status()
    token = created.json()["ApiTokens"][0]
    return SmtpServerHandle(id=created.json()["ID"], token=token, headers={"X-Postmark-Server-Token": token})
