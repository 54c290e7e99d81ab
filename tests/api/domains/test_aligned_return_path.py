"""Aligned return path, end to end: a domain whose ReturnPathDomain is verified (a CNAME in our own DNS
server) sends with the envelope sender on that domain (seen as MAIL FROM by a real SMTP sink); its DKIM
signature verifies against the key published in that DNS server, List-Unsubscribe covered; a DSN mailed
to that return path through the gateway's MX listener becomes a bounce; a domain without a verified
return path keeps RETURN_PATH_DOMAIN."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable
from pathlib import Path

import dkim as dkimpy
import dns.resolver
import httpx
import pytest

from tests.api.conftest import SinkHandler, Worker
from tests.api.core.dns_server import Zone
from tests.compat.conftest import compat_dns, live_api
from tests.factories import ACCOUNT
from tests.smtp_service.conftest import Gateway, gateway

__all__ = ["compat_dns", "gateway", "live_api"]

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dsn"
BROADCAST = {
    "From": "News <news@example.org>",
    "To": "gone@example.net",
    "Subject": "This week",
    "TextBody": "News. Unsubscribe: {{{ pm:unsubscribe }}}",
    "MessageStream": "broadcast",
}


def published(resolver: str) -> Callable[..., bytes]:
    """dkimpy's DNS function, answered by the test's DNS server (the record as published there)."""
    host, port = resolver.split(":")
    ask = dns.resolver.Resolver(configure=False)
    ask.nameservers, ask.port = [host], int(port)

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = ask.resolve(name.decode().rstrip("."), "TXT", search=False)
        return b"".join(b"".join(record.strings) for record in answer)

    return lookup


def signed_header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    match = re.search(r"\bh=([^;]+)", head)
    assert match is not None
    return [name.strip().lower() for name in re.sub(r"\s+", "", match.group(1)).split(":")]


async def test_verified_return_path_is_the_envelope_sender_and_takes_its_bounces(
    live_api: str, compat_dns: tuple[Zone, str], gateway: Gateway, worker: Worker, sink: tuple[SinkHandler, int]
) -> None:
    zone, resolver = compat_dns
    async with httpx.AsyncClient(base_url=live_api, headers={"Accept": "application/json"}) as api:
        created = (await api.post("/servers", json={"Name": "News"}, headers=ACCOUNT)).json()
        server = {"X-Postmark-Server-Token": created["ApiTokens"][0]}
        domain = (
            await api.post("/domains", json={"Name": "example.org", "ReturnPathDomain": "pm-bounces.example.org"}, headers=ACCOUNT)
        ).json()
        zone.txt(domain["DKIMHost"], domain["DKIMTextValue"])
        zone.cname("pm-bounces.example.org", domain["ReturnPathDomainCNAMEValue"])
        verified = (await api.put(f"/domains/{domain['ID']}/verifyReturnPath", headers=ACCOUNT)).json()
        assert verified["ReturnPathDomainVerified"] is True
        sent = (await api.post("/email", json=BROADCAST, headers=server)).json()
        assert sent["ErrorCode"] == 0, sent

        assert await worker.deliver() == 1
        [copy] = sink[0].received
        local, _, envelope_domain = copy.mail_from.rpartition("@")
        assert envelope_domain == "pm-bounces.example.org"
        assert local.startswith("pgb+" + sent["MessageID"].replace("-", "") + "-")
        assert dkimpy.verify(copy.data, dnsfunc=published(resolver))
        names = signed_header_names(copy.data)
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(names)
        # The mailto: of List-Unsubscribe is on the aligned domain too (the listener takes it there).
        assert b"mailto:unsubscribe@pm-bounces.example.org" in copy.data

        dsn = (FIXTURES / "postfix_user_unknown.eml").read_bytes().replace(b"{UUID}", sent["MessageID"].encode())
        dsn = dsn.replace(b"pgb+{HEX}@bounces.postgate.test", copy.mail_from.encode()).replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as mta:
            assert mta.sendmail("", [copy.mail_from], dsn) == {}
            # A domain that is no verified return path (nor inbound domain) is still refused.
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                mta.sendmail("", [copy.mail_from.replace("pm-bounces.example.org", "pm-bounces.example.com")], dsn)
        [bounce] = (await api.get("/bounces?count=10&offset=0&messagestream=broadcast", headers=server)).json()["Bounces"]
        assert (bounce["Type"], bounce["Email"], bounce["MessageID"]) == ("HardBounce", "gone@example.net", sent["MessageID"])


async def test_without_a_verified_return_path_the_global_domain_is_used(
    live_api: str, compat_dns: tuple[Zone, str], worker: Worker, sink: tuple[SinkHandler, int]
) -> None:
    async with httpx.AsyncClient(base_url=live_api, headers={"Accept": "application/json"}) as api:
        created = (await api.post("/servers", json={"Name": "News"}, headers=ACCOUNT)).json()
        server = {"X-Postmark-Server-Token": created["ApiTokens"][0]}
        domain = (
            await api.post("/domains", json={"Name": "example.com", "ReturnPathDomain": "pm-bounces.example.com"}, headers=ACCOUNT)
        ).json()
        # No CNAME published (the zone is the module's: another domain than the first test's): verification fails, and the envelope stays on RETURN_PATH_DOMAIN.
        assert (await api.put(f"/domains/{domain['ID']}/verifyReturnPath", headers=ACCOUNT)).json()["ReturnPathDomainVerified"] is False
        assert (await api.post("/email", json=BROADCAST | {"From": "news@example.com", "To": "ann@example.net"}, headers=server)).json()[
            "ErrorCode"
        ] == 0
        assert await worker.deliver() == 1
        [copy] = sink[0].received
        assert copy.mail_from.endswith("@" + worker.settings.return_path_domain)
