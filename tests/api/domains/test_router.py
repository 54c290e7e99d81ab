from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import update

from api_service.domains import service
from api_service.domains.dns import lookup_for
from api_service.domains.tasks import check_dns
from api_service.models import Domain
from tests.api.conftest import MakeApp, OtherApp
from tests.api.core.dns_server import Zone, dns_server
from tests.factories import ACCOUNT, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def dns_app(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    """The API asking the tests' DNS server (DNS_RESOLVER), with domains confirmed only by DNS."""
    return await other_app(dns_resolver=zone[1], sender_auto_confirm=False, return_path_domain="bounces.postgate.example")


def key_of(text_value: str) -> str:
    return text_value.split("p=", 1)[1]


async def put(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.put(path, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.post(path, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestDomainsApi:
    async def test_create_list_edit_delete(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "Mail.Example.org")
        assert created["Name"] == "mail.example.org"
        listed = await client.get("/domains?count=10&offset=0", headers=ACCOUNT)
        assert [d["Name"] for d in listed.json()["Domains"]] == ["mail.example.org"]
        edited = await client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.mail.example.org"}, headers=ACCOUNT)
        assert edited.json()["ReturnPathDomain"] == "pm.mail.example.org"
        deleted = await client.delete(f"/domains/{created['ID']}", headers=ACCOUNT)
        assert deleted.json() == {"ErrorCode": 0, "Message": "Domain mail.example.org removed."}

    @pytest.mark.parametrize(("name", "code"), [("", 514), ("a" * 256 + ".com", 515), ("not a domain", 516)])
    async def test_invalid_name_returns_its_code(self, client: httpx.AsyncClient, name: str, code: int) -> None:
        response = await client.post("/domains", json={"Name": name}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == code

    async def test_duplicate_returns_512(self, client: httpx.AsyncClient) -> None:
        await create_domain(client, "example.org")
        assert (await client.post("/domains", json={"Name": "example.org"}, headers=ACCOUNT)).json()["ErrorCode"] == 512

    async def test_return_path_outside_domain_returns_511(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "example.org")
        response = await client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.other.org"}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == 511

    async def test_private_key_is_never_returned(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "example.org")
        await client.post(f"/domains/{created['ID']}/rotatedkim", headers=ACCOUNT)
        got = await client.get(f"/domains/{created['ID']}", headers=ACCOUNT)
        assert "PRIVATE KEY" not in got.text

    async def test_new_domain_shows_the_records_to_publish(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        created = await create_domain(client, "example.org")
        settings = app.state.settings
        assert created["DKIMHost"].endswith("._domainkey.example.org")
        assert created["DKIMTextValue"].startswith("k=rsa;p=")
        assert (created["SPFHost"], created["SPFTextValue"]) == ("example.org", settings.spf_text_value)
        assert created["ReturnPathDomainCNAMEValue"] == settings.return_path_domain
        assert (created["DKIMUpdateStatus"], created["DKIMPendingHost"], created["DKIMRevokedHost"]) == ("Regular", "", "")


class TestVerifyDkim:
    async def test_published_key_verifies_through_the_configured_resolver(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        assert created["DKIMVerified"] is False
        zone[0].txt(created["DKIMHost"], "v=DKIM1; k=rsa; p=MIIBIjANBgkq")  # another key
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim"))["DKIMVerified"] is False
        zone[0].records.clear()
        zone[0].txt(created["DKIMHost"], f"v=DKIM1; k=rsa; p={key_of(created['DKIMTextValue'])}")
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim"))["DKIMVerified"] is True
        assert (created["DKIMHost"].lower(), "TXT") in zone[0].queries

    async def test_verified_stays_verified_when_the_record_goes(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        zone[0].txt(created["DKIMHost"], f"v=DKIM1; k=rsa; p={key_of(created['DKIMTextValue'])}")
        await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")
        zone[0].records.clear()
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim"))["DKIMVerified"] is True

    async def test_unverified_domain_cannot_send_until_dns_has_its_key(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        server = await create_server(dns_app.client)
        created = await create_domain(dns_app.client, "example.org")
        refused = await dns_app.client.post("/email", json=message(From="news@example.org"), headers=server.headers)
        assert (refused.status_code, refused.json()["ErrorCode"]) == (422, 400)
        zone[0].txt(created["DKIMHost"], f"v=DKIM1; k=rsa; p={key_of(created['DKIMTextValue'])}")
        await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")
        sent = await dns_app.client.post("/email", json=message(From="news@example.org"), headers=server.headers)
        assert sent.status_code == 200, sent.text


class TestRotateDkim:
    async def test_new_key_waits_for_dns_while_the_old_one_signs(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        old_host, old_value = created["DKIMHost"], created["DKIMTextValue"]
        zone[0].txt(old_host, old_value)
        await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")

        rotated = await post(dns_app.client, f"/domains/{created['ID']}/rotateDKIM")
        assert rotated["DKIMUpdateStatus"] == "Pending"
        assert (rotated["DKIMHost"], rotated["DKIMTextValue"]) == (old_host, old_value)
        assert rotated["DKIMPendingHost"] not in ("", old_host)
        assert rotated["DKIMPendingTextValue"] not in ("", old_value)
        async with dns_app.app.state.sessionmaker() as session:
            [key] = (await service.signing_keys(session=session, domains={"example.org"})).values()
        assert f"{key.selector}._domainkey.example.org" == old_host

        again = await dns_app.client.post(f"/domains/{created['ID']}/rotatedkim", headers=ACCOUNT)
        assert (again.status_code, again.json()["ErrorCode"]) == (422, 505)

        still = await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")  # not in DNS yet
        assert (still["DKIMUpdateStatus"], still["DKIMHost"]) == ("Pending", old_host)

        zone[0].txt(rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
        done = await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")
        assert done["DKIMUpdateStatus"] == "Regular"
        assert (done["DKIMHost"], done["DKIMTextValue"]) == (rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
        assert (done["DKIMRevokedHost"], done["DKIMRevokedTextValue"]) == (old_host, old_value)
        assert (done["DKIMPendingHost"], done["DKIMPendingTextValue"]) == ("", "")
        assert done["SafeToRemoveRevokedKeyFromDNS"] is False
        async with dns_app.app.state.sessionmaker() as session:
            [key] = (await service.signing_keys(session=session, domains={"example.org"})).values()
        assert f"{key.selector}._domainkey.example.org" == done["DKIMHost"]

    async def test_revoked_key_is_safe_to_remove_after_the_grace_period(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        rotated = await post(dns_app.client, f"/domains/{created['ID']}/rotatedkim")
        zone[0].txt(rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
        await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")
        async with dns_app.app.state.sessionmaker() as session, session.begin():
            long_ago = datetime.now(UTC) - service.REVOKED_KEY_GRACE - timedelta(minutes=1)
            await session.execute(update(Domain).where(Domain.id == created["ID"]).values(dkim_revoked_at=long_ago))
        assert (await dns_app.client.get(f"/domains/{created['ID']}", headers=ACCOUNT)).json()["SafeToRemoveRevokedKeyFromDNS"] is True

    async def test_a_second_rotation_on_the_same_day_gets_another_selector(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        first = await post(dns_app.client, f"/domains/{created['ID']}/rotatedkim")
        zone[0].txt(first["DKIMPendingHost"], first["DKIMPendingTextValue"])
        await put(dns_app.client, f"/domains/{created['ID']}/verifyDkim")
        second = await post(dns_app.client, f"/domains/{created['ID']}/rotatedkim")
        assert second["DKIMPendingHost"] not in (created["DKIMHost"], first["DKIMPendingHost"])

    async def test_the_worker_finishes_a_rotation_when_dns_has_the_key(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        rotated = await post(dns_app.client, f"/domains/{created['ID']}/rotatedkim")
        sessionmaker = dns_app.app.state.sessionmaker
        dns = lookup_for(zone[1])
        assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=600) == 1
        assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=600) == 0  # checked just now
        zone[0].txt(rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
        assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=0) == 1
        got = (await dns_app.client.get(f"/domains/{created['ID']}", headers=ACCOUNT)).json()
        assert (got["DKIMUpdateStatus"], got["DKIMHost"], got["DKIMVerified"]) == ("Regular", rotated["DKIMPendingHost"], True)
        assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=0) == 0  # nothing waits any more

    async def test_unknown_domain_returns_404_code_510(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/domains/999/rotatedkim", headers=ACCOUNT)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 510)


class TestVerifyReturnPath:
    async def test_cname_to_the_return_path_domain_verifies(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        await dns_app.client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm-bounces.example.org"}, headers=ACCOUNT)
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath"))["ReturnPathDomainVerified"] is False
        zone[0].cname("pm-bounces.example.org", "bounces.postgate.example")
        verified = await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath")
        assert verified["ReturnPathDomainVerified"] is True
        assert verified["ReturnPathDomainCNAMEValue"] == "bounces.postgate.example"
        listed = (await dns_app.client.get("/domains?count=10&offset=0", headers=ACCOUNT)).json()
        assert listed["Domains"][0]["ReturnPathDomainVerified"] is True

    async def test_mx_at_the_inbound_listener_verifies_and_another_does_not(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        zone[0].mx("bounces.postgate.example", (10, "inbound.postgate.example"))
        created = await create_domain(dns_app.client, "example.org")
        await dns_app.client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.example.org"}, headers=ACCOUNT)
        zone[0].mx("pm.example.org", (10, "mx.elsewhere.example"))
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath"))["ReturnPathDomainVerified"] is False
        zone[0].mx("pm.example.org", (20, "inbound.postgate.example"))
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath"))["ReturnPathDomainVerified"] is True

    async def test_a_new_return_path_must_be_verified_again(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        await dns_app.client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.example.org"}, headers=ACCOUNT)
        zone[0].cname("pm.example.org", "bounces.postgate.example")
        await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath")
        edited = await dns_app.client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "rp.example.org"}, headers=ACCOUNT)
        assert edited.json()["ReturnPathDomainVerified"] is False

    async def test_without_a_return_path_nothing_is_verified(self, dns_app: OtherApp) -> None:
        created = await create_domain(dns_app.client, "example.org")
        assert (await put(dns_app.client, f"/domains/{created['ID']}/verifyReturnPath"))["ReturnPathDomainVerified"] is False


class TestVerifySpf:
    async def test_record_with_the_asked_mechanisms_verifies(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        assert (await post(dns_app.client, f"/domains/{created['ID']}/verifySPF"))["SPFVerified"] is False
        zone[0].txt("example.org", "google-site-verification=abc", "v=spf1 include:_spf.example.net a mx -all")
        assert (await post(dns_app.client, f"/domains/{created['ID']}/verifyspf"))["SPFVerified"] is True

    async def test_two_spf_records_do_not_verify(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(dns_app.client, "example.org")
        zone[0].txt("example.org", "v=spf1 a mx ~all", "v=spf1 include:other.example ~all")
        assert (await post(dns_app.client, f"/domains/{created['ID']}/verifyspf"))["SPFVerified"] is False
