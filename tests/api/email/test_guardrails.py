"""Gmail's and Yahoo's bulk-sender rules at send time: a Broadcasts send from a domain without DMARC or
without an aligned return path is still accepted (200, ErrorCode 0), its Message saying what is missing;
the DMARC look-up goes to our own DNS server, is remembered, and a slow DNS server does not hold a send."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from api_service.domains import guardrails
from tests.api.conftest import MakeApp, OtherApp
from tests.api.core.dns_server import Zone, dns_server
from tests.factories import ACCOUNT, ServerHandle, create_server, message

pytestmark = pytest.mark.asyncio


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def checked_app(other_app: MakeApp, zone: tuple[Zone, str]) -> AsyncIterator[OtherApp]:
    guardrails.DMARC.forget()
    yield await other_app(dns_resolver=zone[1], bulk_sender_checks=True)
    guardrails.DMARC.forget()


async def sending(app: OtherApp, *domains: str) -> ServerHandle:
    for name in domains:
        assert (await app.client.post("/domains", json={"Name": name}, headers=ACCOUNT)).status_code == 200
    return await create_server(app.client)


async def sent_message(app: OtherApp, server: ServerHandle, **fields: str) -> str:
    response = await app.client.post("/email", json=message(**fields), headers=server.headers)
    assert response.status_code == 200, response.text
    assert response.json()["ErrorCode"] == 0
    return str(response.json()["Message"])


class TestBulkSenderWarnings:
    async def test_broadcast_without_dmarc_or_aligned_return_path_warns_and_is_sent(self, checked_app: OtherApp) -> None:
        server = await sending(checked_app, "example.org")
        text = await sent_message(checked_app, server, From="news@example.org", MessageStream="broadcast")
        assert text.startswith("OK. Warning: example.org publishes no DMARC record (_dmarc.example.org)")
        assert "has no verified ReturnPathDomain" in text
        # Transactional mail is not held to the bulk rules.
        assert await sent_message(checked_app, server, From="news@example.org") == "OK"

    async def test_dmarc_and_a_verified_return_path_answer_plain_ok(self, checked_app: OtherApp, zone: tuple[Zone, str]) -> None:
        records = zone[0]
        records.txt("_dmarc.example.com", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com")
        server = await sending(checked_app, "example.com")
        text = await sent_message(checked_app, server, From="news@example.com", MessageStream="broadcast")
        assert "no DMARC record" not in text
        assert "ReturnPathDomain" in text
        domain = (await checked_app.client.get("/domains?count=1&offset=0", headers=ACCOUNT)).json()["Domains"][0]
        await checked_app.client.put(f"/domains/{domain['ID']}", json={"ReturnPathDomain": "pm.example.com"}, headers=ACCOUNT)
        records.cname("pm.example.com", checked_app.settings.return_path_domain)
        verified = await checked_app.client.put(f"/domains/{domain['ID']}/verifyReturnPath", headers=ACCOUNT)
        assert verified.json()["ReturnPathDomainVerified"] is True
        assert await sent_message(checked_app, server, From="news@example.com", MessageStream="broadcast") == "OK"

    async def test_a_subdomain_inherits_its_organisational_domains_dmarc(self, checked_app: OtherApp, zone: tuple[Zone, str]) -> None:
        zone[0].txt("_dmarc.example.net", "v=DMARC1; p=none")
        server = await sending(checked_app, "mail.example.net")
        text = await sent_message(checked_app, server, From="news@mail.example.net", MessageStream="broadcast")
        assert "no DMARC record" not in text

    async def test_each_batch_member_gets_its_own_warnings(self, checked_app: OtherApp) -> None:
        server = await sending(checked_app, "example.org")
        batch = [message(From="news@example.org", MessageStream="broadcast"), message(From="news@example.org")]
        results = (await checked_app.client.post("/email/batch", json=batch, headers=server.headers)).json()
        assert [r["ErrorCode"] for r in results] == [0, 0]
        assert "Warning" in results[0]["Message"]
        assert results[1]["Message"] == "OK"

    async def test_the_dmarc_answer_is_remembered(self, checked_app: OtherApp, zone: tuple[Zone, str]) -> None:
        server = await sending(checked_app, "example.org")
        for _ in range(3):
            await sent_message(checked_app, server, From="news@example.org", MessageStream="broadcast")
        assert [q for q in zone[0].queries if q[0] == "_dmarc.example.org"] == [("_dmarc.example.org", "TXT")]


@pytest.mark.slow
async def test_a_silent_dns_server_does_not_hold_the_send(other_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    guardrails.DMARC.forget()
    monkeypatch.setattr(guardrails, "LOOKUP_SECONDS", 0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives the question, never answers
        app = await other_app(dns_resolver=f"127.0.0.1:{silent.getsockname()[1]}", bulk_sender_checks=True)
        server = await sending(app, "example.org")
        started = time.monotonic()
        text = await sent_message(app, server, From="news@example.org", MessageStream="broadcast")
        assert time.monotonic() - started < guardrails.LOOKUP_SECONDS
        assert "no DMARC record" not in text  # not known yet: no claim either way
        assert "ReturnPathDomain" in text
        await asyncio.sleep(0.6)  # the look-up gives up; nothing is remembered
        assert guardrails.DMARC.known("example.org") is None
