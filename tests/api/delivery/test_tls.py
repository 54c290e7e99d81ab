"""TLS policy of direct delivery over real sockets: a DNS server of our own (TXT, MX, A, TLSA with
the AD bit), an HTTPS server with a test CA serving the MTA-STS policy on 127.x.y.z:443, and MX
servers on 127.x.y.z:25 with a good, a wrong-name and a self-signed certificate."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI

from api_service.config import Settings
from api_service.core import metrics
from api_service.delivery.tls_tasks import PolicyStore
from api_service.delivery.transport import SMTP_PORT, transport_from_settings
from tests.api.conftest import Worker
from tests.api.core.dns_server import Zone, dns_server
from tests.api.delivery.conftest import statuses
from tests.api.delivery.pki import Issued, TestCa
from tests.api.delivery.test_mx import MxHandler, details, loopback_address, mx_settings, port_25, send
from tests.factories import ServerHandle

__all__ = ["port_25"]
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

DOMAIN = "example.net"
MX = "mx.example.net"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(Path(tmp_path_factory.mktemp("test-ca")))


class Servers:
    """MX servers and MTA-STS policy hosts on fresh loopback addresses, stopped at the end."""

    def __init__(self, ca: TestCa) -> None:
        self.ca = ca
        self.stops: list[Any] = []

    def mx(self, certificate: Issued | None) -> tuple[str, MxHandler]:
        ip, handler = loopback_address(), MxHandler()
        context = certificate.server_context() if certificate is not None else None
        controller = Controller(handler, hostname=ip, port=SMTP_PORT, server_hostname=MX, tls_context=context)
        controller.start()
        self.stops.append(controller.stop)
        return ip, handler

    def policy_host(self, domain: str, body: str, *, content_type: str = "text/plain", self_signed: bool = False) -> tuple[str, list[str]]:
        """https://mta-sts.<domain>/.well-known/mta-sts.txt on 127.x.y.z:443; the list collects the paths asked for."""
        asked: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                payload = body.encode()
                self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ip = loopback_address()
        server = ThreadingHTTPServer((ip, 443), Handler)
        certificate = self.ca.issue(f"mta-sts.{domain}", self_signed=self_signed)
        server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.stops.extend([server.server_close, server.shutdown])
        return ip, asked

    def close(self) -> None:
        for stop in reversed(self.stops):
            stop()


@pytest.fixture
def servers(port_25: None, ca: TestCa) -> Iterator[Servers]:
    made = Servers(ca)
    yield made
    made.close()


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


def policy(mode: str, *mx: str, max_age: int = 86400) -> str:
    return "version: STSv1\r\nmode: " + mode + "\r\n" + "".join(f"mx: {m}\r\n" for m in mx) + f"max_age: {max_age}\r\n"


def worker_for(app: FastAPI, settings: Settings, zone: tuple[Zone, str], ca: TestCa, **updates: Any) -> Worker:
    worker_settings = mx_settings(settings, zone[1]).model_copy(update={"delivery_tls_ca_file": ca.path, **updates})
    return Worker(app=app, settings=worker_settings, transport=transport_from_settings(worker_settings, helo="postgate.test"))


@pytest_asyncio.fixture
async def worker(app: FastAPI, settings: Settings, zone: tuple[Zone, str], ca: TestCa) -> AsyncIterator[Worker]:
    made = worker_for(app, settings, zone, ca)
    yield made
    await made.transport.tls.aclose()


def publish_sts(zone: Zone, servers: Servers, text: str, *, record_id: str = "20261208T000000") -> list[str]:
    ip, asked = servers.policy_host(DOMAIN, text)
    zone.txt(f"_mta-sts.{DOMAIN}", f"v=STSv1; id={record_id};")
    zone.a(f"mta-sts.{DOMAIN}", ip)
    return asked


def mx_record(zone: Zone, ip: str, host: str = MX) -> None:
    zone.mx(DOMAIN, (10, host))
    zone.a(host, ip)


async def last_event(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    event: dict[str, Any] = (await details(client, server, message_id))["MessageEvents"][-1]
    return event


def untrusted_sessions() -> float:
    labels = {"policy": "sts", "result": "certificate-not-trusted"}
    return metrics.WORKER_REGISTRY.get_sample_value("postgate_delivery_tls_sessions_total", labels) or 0.0


class TestMtaSts:
    async def test_enforce_with_a_good_certificate_delivers_verified(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        asked = publish_sts(zone[0], servers, policy("enforce", MX))
        sent = await send(client, server, "ok@example.net")
        assert await worker.deliver() == 1
        [received] = handler.received
        assert received.tls
        assert asked == ["/.well-known/mta-sts.txt"]
        event = await last_event(client, server, sent)
        assert event["Type"] == "Delivered"
        assert event["Details"]["TlsVerified"] == "true"
        assert event["Details"]["TlsVersion"].startswith("TLSv1.")
        assert event["Details"]["TlsPolicy"] == "mta-sts enforce"

    async def test_enforce_with_a_wrong_name_certificate_is_deferred_not_sent_in_clear(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(ca.issue("other.example.com"))
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("enforce", MX))
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.received == []
        assert handler.mails == []  # not even a MAIL FROM: nothing went out in clear
        assert await statuses(app) == ["deferred"]
        event = await last_event(client, server, sent)
        assert event["Type"] == "Transient"
        assert "4.7.5" in event["Details"]["DeliveryMessage"]
        assert "certificate-host-mismatch" in event["Details"]["DeliveryMessage"]

    async def test_enforce_with_a_self_signed_certificate_is_deferred(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX, self_signed=True))
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("enforce", MX))
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]
        assert "certificate-not-trusted" in (await last_event(client, server, sent))["Details"]["DeliveryMessage"]

    async def test_enforce_with_an_expired_certificate_is_deferred(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX, expired=True))
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("enforce", MX))
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert "certificate-expired" in (await last_event(client, server, sent))["Details"]["DeliveryMessage"]

    async def test_enforce_without_starttls_is_deferred(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers
    ) -> None:
        ip, handler = servers.mx(None)
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("enforce", MX))
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]

    async def test_enforce_never_connects_to_an_mx_the_policy_does_not_list(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(ca.issue("rogue.example.org"))
        mx_record(zone[0], ip, host="rogue.example.org")
        publish_sts(zone[0], servers, policy("enforce", "*.example.net"))
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]

    async def test_testing_mode_delivers_despite_a_wrong_certificate(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX, self_signed=True))
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("testing", MX))
        sent = await send(client, server, "ok@example.net")
        before = untrusted_sessions()
        await worker.deliver()
        assert untrusted_sessions() == before + 1
        [received] = handler.received
        assert received.tls  # unverified TLS, not plain text
        event = await last_event(client, server, sent)
        assert event["Type"] == "Delivered"
        assert event["Details"]["TlsVerified"] == "false"
        counted = worker.transport.tls.sessions.take()
        assert {(k.policy_type.value, k.result.value if k.result else None) for k in counted} == {("sts", "certificate-not-trusted")}

    async def test_policy_is_cached_until_its_id_changes(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        asked = publish_sts(zone[0], servers, policy("enforce", MX))
        for _ in range(2):
            await send(client, server, "ok@example.net")
            await worker.deliver()
        assert len(handler.received) == 2
        assert len(asked) == 1

    async def test_an_enforce_policy_outlives_a_restart_and_its_txt_record(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        worker.transport.tls.store = PolicyStore(app.state.sessionmaker)
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        publish_sts(zone[0], servers, policy("enforce", MX))
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        # An attacker strips the TXT record and answers for the MX with a certificate of their own.
        with zone[0].lock:
            del zone[0].records[f"_mta-sts.{DOMAIN}"]
            zone[0].records[MX.lower()].clear()
        rogue_ip, rogue = servers.mx(ca.issue("attacker.example.com"))
        zone[0].a(MX, rogue_ip)
        restarted = worker_for(app, settings, zone, ca)
        restarted.transport.tls.store = PolicyStore(app.state.sessionmaker)
        await send(client, server, "ok@example.net")
        await restarted.deliver()
        assert rogue.mails == []
        assert (await statuses(app))[-1] == "deferred"

    async def test_a_policy_host_with_an_untrusted_certificate_is_not_believed(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue("other.example.com"))
        mx_record(zone[0], ip)
        host_ip, _ = servers.policy_host(DOMAIN, policy("enforce", MX), self_signed=True)
        zone[0].txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=1;")
        zone[0].a(f"mta-sts.{DOMAIN}", host_ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1  # a policy an attacker could serve is no policy: delivered as before
        counted = worker.transport.tls.sessions.take()
        assert {(k.policy_type.value, k.result) for k in counted} == {("sts", "sts-webpki-invalid")}

    async def test_a_policy_that_is_not_text_plain_is_not_used(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue("other.example.com"))
        mx_record(zone[0], ip)
        host_ip, _ = servers.policy_host(DOMAIN, policy("enforce", MX), content_type="text/html")
        zone[0].txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=1;")
        zone[0].a(f"mta-sts.{DOMAIN}", host_ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1  # no valid policy: opportunistic, as before
        counted = worker.transport.tls.sessions.take()
        # Reported as a session that failed for the policy's sake (RFC 8460 sts-policy-invalid).
        assert {(k.policy_type.value, k.result) for k in counted} == {("sts", "sts-policy-invalid")}


def tlsa_data(issued: Issued) -> bytes:
    return hashlib.sha256(issued.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()


class TestDane:
    async def test_matching_dane_ee_record_delivers_verified(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        certificate = ca.issue("anything.invalid", self_signed=True)  # DANE-EE ignores names and issuers
        ip, handler = servers.mx(certificate)
        mx_record(zone[0], ip)
        zone[0].tlsa(f"_25._tcp.{MX}", 3, 1, 1, tlsa_data(certificate))
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        event = await last_event(client, server, sent)
        assert event["Details"]["TlsVerified"] == "true"
        assert event["Details"]["TlsPolicy"] == "dane"

    async def test_dane_ta_record_of_the_root_delivers(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        zone[0].tlsa(f"_25._tcp.{MX}", 2, 0, 1, hashlib.sha256(ca.cert.public_bytes(Encoding.DER)).digest())
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1

    async def test_authenticated_mismatching_record_defers(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        zone[0].tlsa(f"_25._tcp.{MX}", 3, 1, 1, b"\x00" * 32)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]

    async def test_unauthenticated_records_are_ignored(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: Servers, ca: TestCa
    ) -> None:
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        zone[0].tlsa(f"_25._tcp.{MX}", 3, 1, 1, b"\x00" * 32, secure=False)  # no AD bit: not DNSSEC-validated
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        assert (await last_event(client, server, sent))["Details"]["TlsVerified"] == "false"


class TestOverrides:
    async def test_policy_file_verify_defers_a_self_signed_mx(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
        tmp_path: Path,
    ) -> None:
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text('[tls."example.net"]\nsecurity = "verify"\n')
        worker = worker_for(app, settings, zone, ca, delivery_policy_file=str(policy_file))
        ip, handler = servers.mx(ca.issue(MX, self_signed=True))
        mx_record(zone[0], ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]

    async def test_require_setting_defers_an_mx_without_starttls(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        worker = worker_for(app, settings, zone, ca, delivery_tls_require="example.net")
        ip, handler = servers.mx(None)
        mx_record(zone[0], ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        assert await statuses(app) == ["deferred"]

    async def test_verify_setting_delivers_to_a_good_certificate(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        worker = worker_for(app, settings, zone, ca, delivery_tls_verify="example.net")
        ip, handler = servers.mx(ca.issue(MX))
        mx_record(zone[0], ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        assert (await last_event(client, server, sent))["Details"]["TlsPolicy"] == "policy"
