"""An optional Ed25519 DKIM key (RFC 8463, beyond Postmark): shown with the other records, signing beside
the RSA key once its record is seen in DNS, rotated with the RSA key; both signatures verify (dkimpy)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import dkim as dkimpy
import dns.resolver
import pytest
import pytest_asyncio

from api_service.domains.dkim import generate_ed25519_key, generate_key, sign
from tests.api.conftest import MakeApp, OtherApp, SinkHandler, Worker
from tests.api.core.dns_server import Zone, dns_server
from tests.api.domains.test_dkim import LIST_MAIL
from tests.factories import ACCOUNT, create_server, message

RSA, ED = generate_key(), generate_ed25519_key()


def published_in(zone_address: str) -> Callable[..., bytes]:
    """dkimpy's DNS function answered by the test DNS server."""
    host, port = zone_address.split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], int(port)

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT", search=False)
        return b"".join(b"".join(record.strings) for record in answer)

    return lookup


def algorithms(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return re.findall(r"\ba=([a-z0-9-]+)", head)


class TestSigning:
    def test_both_signatures_verify_and_cover_the_same_headers(self) -> None:
        def lookup(name: bytes, timeout: int = 5) -> bytes:
            records = {
                f"{RSA.selector}._domainkey.example.org": f"v=DKIM1; k=rsa; p={RSA.public_b64}",
                f"{ED.selector}._domainkey.example.org": f"v=DKIM1; k=ed25519; p={ED.public_b64}",
            }
            return records[name.decode().rstrip(".")].encode()

        signed = sign(
            LIST_MAIL,
            domain="example.org",
            selector=RSA.selector,
            private_pem=RSA.private_pem,
            ed25519_selector=ED.selector,
            ed25519_key=ED.private_pem,
        )
        assert algorithms(signed) == ["rsa-sha256", "ed25519-sha256"]
        assert dkimpy.verify(signed, dnsfunc=lookup)
        assert dkimpy.DKIM(signed).verify(idx=1, dnsfunc=lookup)
        assert not dkimpy.DKIM(signed.replace(b"This week", b"That week")).verify(idx=1, dnsfunc=lookup)

    def test_ed25519_selectors_never_take_an_rsa_one(self) -> None:
        assert ED.selector.startswith("pge")
        assert generate_ed25519_key(taken={ED.selector}).selector == ED.selector + "-2"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def dns_app(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    return await other_app(dns_resolver=zone[1])


async def call(app: OtherApp, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await app.client.request(method, path, headers=ACCOUNT, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.asyncio
@pytest.mark.slow
async def test_ed25519_key_signs_once_published_and_rotates_with_the_rsa_key(
    dns_app: OtherApp, zone: tuple[Zone, str], worker: Worker, sink: tuple[SinkHandler, int]
) -> None:
    records, address = zone
    domain = await call(dns_app, "POST", "/domains", json={"Name": "example.org", "DKIMEd25519": True})
    assert (domain["DKIMEd25519"], domain["DKIMEd25519Verified"]) == (True, False)
    assert domain["DKIMEd25519TextValue"].startswith("k=ed25519;p=")
    assert domain["DKIMEd25519Host"] != domain["DKIMHost"]
    records.txt(domain["DKIMHost"], domain["DKIMTextValue"])
    server = await create_server(dns_app.client)

    async def delivered() -> bytes:
        before = len(sink[0].received)
        assert (await dns_app.client.post("/email", json=message(From="app@example.org"), headers=server.headers)).status_code == 200
        assert await worker.deliver() == 1
        return sink[0].received[before].data

    # Not yet in DNS: only the RSA key signs.
    assert algorithms(await delivered()) == ["rsa-sha256"]
    records.txt(domain["DKIMEd25519Host"], domain["DKIMEd25519TextValue"])
    verified = await call(dns_app, "PUT", f"/domains/{domain['ID']}/verifyDkim")
    assert verified["DKIMEd25519Verified"] is True
    data = await delivered()
    assert algorithms(data) == ["rsa-sha256", "ed25519-sha256"]
    assert dkimpy.verify(data, dnsfunc=published_in(address))
    assert dkimpy.DKIM(data).verify(idx=1, dnsfunc=published_in(address))

    rotated = await call(dns_app, "POST", f"/domains/{domain['ID']}/rotatedkim")
    assert rotated["DKIMUpdateStatus"] == "Pending"
    assert rotated["DKIMEd25519PendingTextValue"].startswith("k=ed25519;p=")
    assert rotated["DKIMEd25519PendingHost"] not in (domain["DKIMEd25519Host"], rotated["DKIMPendingHost"])
    records.txt(rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
    records.txt(rotated["DKIMEd25519PendingHost"], rotated["DKIMEd25519PendingTextValue"])
    done = await call(dns_app, "PUT", f"/domains/{domain['ID']}/verifyDkim")
    assert (done["DKIMUpdateStatus"], done["DKIMEd25519Host"], done["DKIMEd25519RevokedHost"]) == (
        "Regular",
        rotated["DKIMEd25519PendingHost"],
        domain["DKIMEd25519Host"],
    )
    data = await delivered()
    assert f"s={rotated['DKIMEd25519PendingHost'].split('.')[0]}".encode() in data
    assert dkimpy.DKIM(data).verify(idx=1, dnsfunc=published_in(address))

    # Turned off: the key is revoked (its record may go later), the RSA key signs alone.
    off = await call(dns_app, "PUT", f"/domains/{domain['ID']}", json={"DKIMEd25519": False})
    assert (off["DKIMEd25519"], off["DKIMEd25519Host"], off["DKIMEd25519RevokedHost"]) == (False, "", rotated["DKIMEd25519PendingHost"])
    assert algorithms(await delivered()) == ["rsa-sha256"]
