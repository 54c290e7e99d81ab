"""Direct delivery to MX hosts: a DNS server of our own and SMTP servers on loopback addresses, port 25.

Every server listens on its own 127.x.y.z (all of 127.0.0.0/8 is loopback on Linux), which the
worker may reach because MX_ALLOWED_NETWORKS=127.0.0.0/8; nothing leaves loopback. Binding port
25 needs root (or CAP_NET_BIND_SERVICE): without it these tests are skipped.
"""

from __future__ import annotations

import random
import socket
import socketserver
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from api_service.bounces.classify import Outcome, classify
from api_service.config import Settings
from api_service.core.netguard import dns_resolver, parse_networks
from api_service.delivery.transport import SMTP_PORT, Transport, mx_hosts, transport_from_settings
from shared.constants import BounceType
from tests.api.conftest import Worker
from tests.api.core.dns_server import Zone, dns_server
from tests.factories import ServerHandle, message
from tests.smtp_service.conftest import self_signed

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

# A random 127.x.y.0/24-ish base per run, so two runs on one machine do not meet on port 25.
_BASE = int(IPv4Address("127.0.0.0")) + random.randrange(1, 2**24 - 4096)
_next = iter(range(4096))


def loopback_address() -> str:
    """A loopback address no other server of this run uses."""
    return str(IPv4Address(_BASE + next(_next)))


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    data: bytes
    tls: bool


@dataclass
class MxHandler:
    """An MX: records MAIL commands and messages; answers MAIL with `mail_reply` when set."""

    mail_reply: str | None = None
    mails: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:
        self.mails.append(address)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                data=bytes(envelope.original_content or b""),
                tls=session.ssl is not None,
            )
        )
        return "250 2.0.0 Ok: queued"


class Greeter(socketserver.BaseRequestHandler):
    """A server that greets with its `reply` and hangs up."""

    def handle(self) -> None:
        self.request.sendall(self.server.reply.encode() + b"\r\n")  # type: ignore[attr-defined]


class MxServers:
    def __init__(self, certificate: tuple[str, str]) -> None:
        self.certificate = certificate
        self.stops: list[Any] = []

    def smtp(self, *, mail_reply: str | None = None, tls: str = "none", smtputf8: bool = False) -> tuple[str, MxHandler]:
        """An aiosmtpd MX on a fresh loopback address; `tls`: none, good (STARTTLS works) or broken (handshake fails)."""
        ip, handler = loopback_address(), MxHandler(mail_reply=mail_reply)
        context: ssl.SSLContext | None = None
        if tls == "good":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
        elif tls == "broken":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no certificate: every handshake fails
        controller = Controller(
            handler, hostname=ip, port=SMTP_PORT, server_hostname="mx.test", tls_context=context, enable_SMTPUTF8=smtputf8
        )
        controller.start()
        self.stops.append(controller.stop)
        return ip, handler

    def greeting(self, reply: str) -> str:
        ip = loopback_address()
        socketserver.TCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((ip, SMTP_PORT), Greeter)
        server.reply = reply  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.stops.extend([server.server_close, server.shutdown])
        return ip

    def silent(self) -> str:
        """Accepts connections (the kernel does) and never says a word."""
        ip = loopback_address()
        sock = socket.socket()
        sock.bind((ip, SMTP_PORT))
        sock.listen(8)
        self.stops.append(sock.close)
        return ip

    def close(self) -> None:
        for stop in reversed(self.stops):
            stop()


@pytest.fixture(scope="session")
def port_25() -> None:
    with socket.socket() as sock:
        try:
            sock.bind((loopback_address(), SMTP_PORT))
        except PermissionError:
            pytest.skip("binding port 25 needs root or CAP_NET_BIND_SERVICE")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("mx-tls")))


@pytest.fixture
def servers(port_25: None, certificate: tuple[str, str]) -> Iterator[MxServers]:
    servers = MxServers(certificate)
    yield servers
    servers.close()


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


def mx_settings(settings: Settings, resolver: str, *, allowed: str = "127.0.0.0/8") -> Settings:
    return settings.model_copy(
        update={
            "outbound_relay": "mx",
            "dns_resolver": resolver,
            "mx_allowed_networks": allowed,
            "return_path_domain": "bounces.postgate.test",
            "delivery_retry_first_seconds": 0.0,
            "delivery_retry_horizon_seconds": 3600.0,
            "delivery_lease_seconds": 1.0,
            "delivery_timeout_seconds": 10.0,
            "delivery_deadline_seconds": 60.0,
        }
    )


@pytest_asyncio.fixture
async def worker(app: FastAPI, settings: Settings, zone: tuple[Zone, str]) -> AsyncIterator[Worker]:
    worker_settings = mx_settings(settings, zone[1])
    transport = transport_from_settings(worker_settings, helo="postgate.test")
    yield Worker(app=app, settings=worker_settings, transport=transport)
    transport.close()


async def send(client: httpx.AsyncClient, server: ServerHandle, to: str) -> str:
    response = await client.post("/email", json=message(From="App <app@example.org>", To=to), headers=server.headers)
    assert response.status_code == 200, response.text
    message_id: str = response.json()["MessageID"]
    return message_id


async def details(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/messages/outbound/{message_id}/details", headers=server.headers)
    body: dict[str, Any] = response.json()
    return body


async def bounces(client: httpx.AsyncClient, server: ServerHandle) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
    return found


class TestMxOrder:
    async def test_lowest_preference_gets_the_message(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        (primary_ip, primary), (backup_ip, backup) = servers.smtp(), servers.smtp()
        zone[0].mx("example.net", (20, "backup.example.net"), (10, "primary.example.net"))
        zone[0].a("primary.example.net", primary_ip)
        zone[0].a("backup.example.net", backup_ip)
        sent = await send(client, server, "ok@example.net")
        assert await worker.deliver() == 1
        [received] = primary.received
        assert received.rcpt_tos == ["ok@example.net"]
        assert received.mail_from.endswith("@bounces.postgate.test")
        assert backup.mails == []
        got = await details(client, server, sent)
        assert got["Status"] == "Sent"
        [event] = got["MessageEvents"]
        assert event["Type"] == "Delivered"
        assert event["Details"]["DestinationServer"] == "primary.example.net"
        assert event["Details"]["DestinationIP"] == primary_ip

    async def test_refused_connection_falls_back_to_the_next_mx(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        backup_ip, backup = servers.smtp()
        zone[0].mx("example.net", (10, "down.example.net"), (20, "backup.example.net"))
        zone[0].a("down.example.net", loopback_address())  # nothing listens there
        zone[0].a("backup.example.net", backup_ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(backup.received) == 1
        [event] = (await details(client, server, sent))["MessageEvents"]
        assert event["Details"]["DestinationServer"] == "backup.example.net"

    async def test_4xx_greeting_falls_back_to_the_next_mx(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        backup_ip, backup = servers.smtp()
        zone[0].mx("example.net", (10, "busy.example.net"), (20, "backup.example.net"))
        zone[0].a("busy.example.net", servers.greeting("421 4.3.2 busy.example.net Service not available, try later"))
        zone[0].a("backup.example.net", backup_ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(backup.received) == 1

    async def test_4xx_mail_falls_back_to_the_next_mx(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        (busy_ip, busy), (backup_ip, backup) = servers.smtp(mail_reply="451 4.3.0 Try again later"), servers.smtp()
        zone[0].mx("example.net", (10, "busy.example.net"), (20, "backup.example.net"))
        zone[0].a("busy.example.net", busy_ip)
        zone[0].a("backup.example.net", backup_ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(busy.mails) == 1
        assert busy.received == []
        assert len(backup.received) == 1

    async def test_5xx_mail_decides_without_trying_the_next_mx(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        (strict_ip, _), (backup_ip, backup) = servers.smtp(mail_reply="550 5.7.1 Sender rejected by policy"), servers.smtp()
        zone[0].mx("example.net", (10, "strict.example.net"), (20, "backup.example.net"))
        zone[0].a("strict.example.net", strict_ip)
        zone[0].a("backup.example.net", backup_ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert backup.mails == []
        [bounce] = await bounces(client, server)
        assert bounce["MessageID"] == sent
        assert bounce["Type"] == "Blocked"
        assert "550 5.7.1 Sender rejected by policy" in bounce["Details"]

    async def test_each_address_of_a_host_is_tried_in_turn(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        live_ip, live = servers.smtp()
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", loopback_address())  # IPv4 first, and nothing listens there
        zone[0].aaaa("mx.example.net", f"::ffff:{live_ip}")
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(live.received) == 1
        [event] = (await details(client, server, sent))["MessageEvents"]
        assert event["Details"]["DestinationIP"] == f"::ffff:{live_ip}"

    async def test_no_mx_delivers_to_the_domain_itself(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        ip, handler = servers.smtp()
        zone[0].a("example.net", ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        [event] = (await details(client, server, sent))["MessageEvents"]
        assert event["Details"]["DestinationServer"] == "example.net"


class TestTls:
    async def test_offered_starttls_is_used(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        ip, handler = servers.smtp(tls="good")
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        [received] = handler.received
        assert received.tls is True

    async def test_failed_handshake_is_retried_in_plain_text(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        ip, handler = servers.smtp(tls="broken")
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        [received] = handler.received
        assert received.tls is False
        assert (await details(client, server, sent))["Status"] == "Sent"


class TestDeadDomains:
    async def test_nxdomain_is_a_hard_bounce_at_once(self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
        sent = await send(client, server, "someone@gone.example")
        await worker.deliver()
        [bounce] = await bounces(client, server)
        assert bounce["MessageID"] == sent
        assert bounce["Type"] == "HardBounce"
        assert bounce["Inactive"] is True
        assert "550 5.1.2" in bounce["Details"]
        assert "does not exist" in bounce["Details"]
        assert [e["Type"] for e in (await details(client, server, sent))["MessageEvents"]] == ["Bounced"]

    async def test_null_mx_is_a_hard_bounce_at_once(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str]
    ) -> None:
        zone[0].null_mx("example.net")
        zone[0].a("example.net", "127.0.0.1")  # a null MX forbids falling back to the address
        await send(client, server, "ok@example.net")
        await worker.deliver()
        [bounce] = await bounces(client, server)
        assert bounce["Type"] == "HardBounce"
        assert "556 5.1.10" in bounce["Details"]
        assert "null MX" in bounce["Details"]

    async def test_no_mx_and_no_address_is_a_hard_bounce(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str]
    ) -> None:
        zone[0].exists("example.net")
        await send(client, server, "ok@example.net")
        await worker.deliver()
        [bounce] = await bounces(client, server)
        assert bounce["Type"] == "HardBounce"
        assert "no MX and no address" in bounce["Details"]

    async def test_servfail_is_deferred_and_retried(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        zone[0].fail("example.net")
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        got = await details(client, server, sent)
        assert got["Status"] == "Queued"
        [event] = got["MessageEvents"]
        assert event["Type"] == "Transient"
        assert event["Details"]["DeliveryMessage"].startswith("451 4.4.3")
        assert await bounces(client, server) == []
        ip, handler = servers.smtp()
        zone[0].failing.clear()
        zone[0].a("example.net", ip)
        assert await worker.deliver() == 1
        assert len(handler.received) == 1


class TestNetworkGuard:
    async def test_mx_on_loopback_is_refused_without_the_allow_list(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],
        servers: MxServers,
    ) -> None:
        guarded = mx_settings(settings, zone[1], allowed="")
        worker = Worker(app=app, settings=guarded, transport=transport_from_settings(guarded, helo="postgate.test"))
        ip, handler = servers.smtp()
        zone[0].mx("example.net", (10, "local.example.net"), (20, "other.example.net"))
        zone[0].a("local.example.net", "127.0.0.1")
        zone[0].a("other.example.net", ip)
        sent = await send(client, server, "ok@example.net")
        await worker.deliver()
        assert handler.mails == []
        [bounce] = await bounces(client, server)
        assert bounce["MessageID"] == sent
        assert bounce["Type"] == "DnsError"
        assert "550 5.4.4 Refusing to deliver to non-public addresses" in bounce["Details"]
        assert "local.example.net [127.0.0.1]" in bounce["Details"]
        assert "MX_ALLOWED_NETWORKS" in bounce["Details"]


class TestInternationalised:
    async def test_idn_domain_is_looked_up_and_sent_as_punycode(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        ip, handler = servers.smtp()
        zone[0].mx("xn--bcher-kva.de", (10, "mx.xn--bcher-kva.de"))
        zone[0].a("mx.xn--bcher-kva.de", ip)
        zone[0].a("example.net", ip)
        # The API keeps the domain in its IDNA form, so it can stand in the To header too.
        response = await client.post(
            "/email", json=message(From="App <app@example.org>", To="ok@example.net, Jörg <user@bücher.de>"), headers=server.headers
        )
        assert response.status_code == 200, response.text
        sent = response.json()["MessageID"]
        assert await worker.deliver() == 2
        assert sorted(r for received in handler.received for r in received.rcpt_tos) == ["ok@example.net", "user@xn--bcher-kva.de"]
        assert ("xn--bcher-kva.de", "MX") in zone[0].queries
        assert not any(name.startswith("b\xfc") or not name.isascii() for name, _ in zone[0].queries)
        got = await details(client, server, sent)
        assert got["Status"] == "Sent"
        assert {e["Recipient"] for e in got["MessageEvents"] if e["Type"] == "Delivered"} == {"ok@example.net", "user@xn--bcher-kva.de"}


@pytest.fixture
def transport(zone: tuple[Zone, str]) -> Transport:
    return Transport(relay=None, helo="postgate.test", timeout=10, resolver=dns_resolver(zone[1]), mx_allowed=parse_networks("127.0.0.0/8"))


DATA = b"From: app@example.org\r\nTo: someone\r\nSubject: hi\r\n\r\nhello\r\n"


class TestTransport:
    async def test_non_ascii_mailbox_uses_smtputf8(self, transport: Transport, zone: tuple[Zone, str], servers: MxServers) -> None:
        ip, handler = servers.smtp(smtputf8=True)
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", ip)
        attempt = await transport.send(sender="pgb@bounces.postgate.test", domain="example.net", recipients=["jörg@example.net"], data=DATA)
        assert attempt.replies["jörg@example.net"].code == 250
        [received] = handler.received
        assert received.rcpt_tos == ["jörg@example.net"]
        assert "SMTPUTF8" in received.mail_options

    async def test_non_ascii_mailbox_without_smtputf8_fails_permanently(
        self, transport: Transport, zone: tuple[Zone, str], servers: MxServers
    ) -> None:
        ip, handler = servers.smtp(smtputf8=False)
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", ip)
        attempt = await transport.send(
            sender="pgb@bounces.postgate.test", domain="example.net", recipients=["jörg@example.net", "joerg@example.net"], data=DATA
        )
        refused = attempt.replies["jörg@example.net"]
        assert (refused.code, refused.message.split()[0]) == (553, "5.6.7")
        assert "SMTPUTF8" in refused.message
        assert classify(refused.code, refused.message).bounce_type is BounceType.HARD_BOUNCE
        assert attempt.replies["joerg@example.net"].code == 250
        [received] = handler.received
        assert received.rcpt_tos == ["joerg@example.net"]
        assert "SMTPUTF8" not in received.mail_options

    async def test_silent_server_is_cut_off_by_the_deadline_and_deferred(self, zone: tuple[Zone, str], servers: MxServers) -> None:
        impatient = Transport(
            relay=None,
            helo="postgate.test",
            timeout=30,
            resolver=dns_resolver(zone[1]),
            mx_allowed=parse_networks("127.0.0.0/8"),
            deadline=0.5,
        )
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", servers.silent())
        attempt = await impatient.send(sender="pgb@bounces.postgate.test", domain="example.net", recipients=["ok@example.net"], data=DATA)
        reply = attempt.replies["ok@example.net"]
        assert reply.code == 451
        assert reply.message.startswith("4.4.7")
        assert classify(reply.code, reply.message).outcome is Outcome.RETRY

    async def test_every_address_refused_without_allow_list_is_permanent(self, zone: tuple[Zone, str]) -> None:
        guarded = Transport(relay=None, helo="postgate.test", timeout=10, resolver=dns_resolver(zone[1]))
        zone[0].mx("example.net", (10, "mx.example.net"))
        zone[0].a("mx.example.net", "10.1.2.3", "169.254.169.254")
        zone[0].aaaa("mx.example.net", "::ffff:127.0.0.1", "fd00::25")
        attempt = await guarded.send(sender="pgb@bounces.postgate.test", domain="example.net", recipients=["ok@example.net"], data=DATA)
        reply = attempt.replies["ok@example.net"]
        assert reply.code == 550
        assert "10.1.2.3, 169.254.169.254, ::ffff:127.0.0.1, fd00::25" in reply.message
        assert classify(reply.code, reply.message).outcome is Outcome.BOUNCE


class TestMxHosts:
    async def test_equal_preferences_come_in_both_orders_and_before_higher_ones(self, zone: tuple[Zone, str]) -> None:
        zone[0].mx("example.net", (10, "a.example.net"), (10, "b.example.net"), (5, "first.example.net"), (30, "last.example.net"))
        resolver = dns_resolver(zone[1])
        orders = {tuple(await mx_hosts("example.net", resolver=resolver)) for _ in range(40)}
        assert orders == {
            ("first.example.net", "a.example.net", "b.example.net", "last.example.net"),
            ("first.example.net", "b.example.net", "a.example.net", "last.example.net"),
        }
