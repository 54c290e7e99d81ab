"""A sending domain's own tracking domain (beyond Postmark): a CNAME of the tracking host, verified like
the return path; the domain's mail then has its pixel and links on `https://<TrackingDomain>/t/…`, the
tracking routes answer there, and the TLS proxy's `ask` endpoint says yes to that name only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import pytest_asyncio

from api_service.domains.dns import lookup_for
from api_service.domains.service import CnameTargets
from api_service.domains.tasks import check_dns
from tests.api.conftest import MakeApp, OtherApp, SinkHandler, Worker
from tests.api.core.dns_server import Zone, dns_server
from tests.api.tracking.conftest import read_copy
from tests.factories import ACCOUNT, create_server, message

pytestmark = pytest.mark.asyncio
TRACKING_HOST = "track.postgate.example"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def dns_app(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    return await other_app(dns_resolver=zone[1], tracking_base_url=f"https://{TRACKING_HOST}")


async def check(client: httpx.AsyncClient, domain: str) -> int:
    return (await client.get("/tracking/domain-check", params={"domain": domain})).status_code


async def tracked_domain(dns_app: OtherApp, zone: Zone) -> dict[str, object]:
    created = await dns_app.client.post("/domains", json={"Name": "example.org", "TrackingDomain": "Links.Example.org"}, headers=ACCOUNT)
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["TrackingDomain"], body["TrackingDomainVerified"], body["TrackingDomainCNAMEValue"]) == (
        "links.example.org",
        False,
        TRACKING_HOST,
    )
    zone.cname("links.example.org", TRACKING_HOST)
    verified = (await dns_app.client.put(f"/domains/{body['ID']}/verifyTrackingDomain", headers=ACCOUNT)).json()
    assert verified["TrackingDomainVerified"] is True
    return dict(verified)


class TestTrackingDomainApi:
    @pytest.mark.parametrize(
        ("tracking", "return_path"),
        [("links.example.com", None), ("example.org", None), ("bad_name.example.org", None), ("pm.example.org", "pm.example.org")],
    )
    async def test_a_tracking_domain_outside_the_domain_or_on_the_return_path_returns_511(
        self, client: httpx.AsyncClient, tracking: str, return_path: str | None
    ) -> None:
        body = {"Name": "example.org", "TrackingDomain": tracking, "ReturnPathDomain": return_path}
        response = await client.post("/domains", json=body, headers=ACCOUNT)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 511

    async def test_cname_elsewhere_does_not_verify_and_a_new_name_must_be_verified_again(
        self, dns_app: OtherApp, zone: tuple[Zone, str]
    ) -> None:
        created = (
            await dns_app.client.post("/domains", json={"Name": "example.org", "TrackingDomain": "t.example.org"}, headers=ACCOUNT)
        ).json()
        zone[0].cname("t.example.org", "elsewhere.example")
        assert (await dns_app.client.put(f"/domains/{created['ID']}/verifyTrackingDomain", headers=ACCOUNT)).json()[
            "TrackingDomainVerified"
        ] is False
        zone[0].cname("u.example.org", TRACKING_HOST)
        edited = (await dns_app.client.put(f"/domains/{created['ID']}", json={"TrackingDomain": "u.example.org"}, headers=ACCOUNT)).json()
        assert (edited["TrackingDomain"], edited["TrackingDomainVerified"]) == ("u.example.org", False)
        assert (await dns_app.client.put(f"/domains/{created['ID']}/verifyTrackingDomain", headers=ACCOUNT)).json()[
            "TrackingDomainVerified"
        ] is True
        removed = (await dns_app.client.put(f"/domains/{created['ID']}", json={"TrackingDomain": ""}, headers=ACCOUNT)).json()
        assert (removed["TrackingDomain"], removed["TrackingDomainVerified"]) == ("", False)

    async def test_the_ask_endpoint_answers_200_only_for_verified_tracking_domains(self, dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
        assert await check(dns_app.client, "links.example.org") == 404  # remembered, then forgotten at the verification
        domain = await tracked_domain(dns_app, zone[0])
        assert await check(dns_app.client, "links.example.org") == 200
        assert await check(dns_app.client, "LINKS.example.org.") == 200
        for other in ("example.org", "other.example.org", "", "not a name", "x" * 300, "127.0.0.1"):
            assert await check(dns_app.client, other) != 200, other
        await dns_app.client.delete(f"/domains/{domain['ID']}", headers=ACCOUNT)
        assert await check(dns_app.client, "links.example.org") == 404


@pytest.mark.slow
async def test_mail_of_the_domain_is_tracked_on_its_own_host(
    dns_app: OtherApp, zone: tuple[Zone, str], worker: Worker, sink: tuple[SinkHandler, int]
) -> None:
    await tracked_domain(dns_app, zone[0])
    server = await create_server(dns_app.client)
    body = message(
        From="app@example.org", HtmlBody='<p><a href="https://example.com/news">Read</a></p>', TrackOpens=True, TrackLinks="HtmlAndText"
    )
    assert (await dns_app.client.post("/email", json=body, headers=server.headers)).status_code == 200
    assert await worker.deliver() == 1
    copy = read_copy(sink[0].received[0].data)
    [pixel] = copy.urls("https://links.example.org", "o", copy.html)
    [link] = copy.urls("https://links.example.org", "c", copy.html)
    assert worker.settings.tracking_url not in copy.html
    # The tracking routes answer on that host (the proxy forwards it as is).
    followed = await dns_app.client.get(link)
    assert (followed.status_code, followed.headers["location"]) == (302, "https://example.com/news")
    assert (await dns_app.client.get(pixel)).headers["content-type"] == "image/gif"


async def test_the_worker_verifies_return_path_and_tracking_domains_once_published(dns_app: OtherApp, zone: tuple[Zone, str]) -> None:
    body = {"Name": "example.org", "ReturnPathDomain": "pm.example.org", "TrackingDomain": "links.example.org"}
    created = (await dns_app.client.post("/domains", json=body, headers=ACCOUNT)).json()
    targets = CnameTargets(return_path="bounces.postgate.example", tracking=TRACKING_HOST)
    sessionmaker, dns = dns_app.app.state.sessionmaker, lookup_for(zone[1])
    assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=0, targets=targets) == 1
    zone[0].cname("pm.example.org", "bounces.postgate.example")
    zone[0].cname("links.example.org", TRACKING_HOST)
    assert await check_dns(sessionmaker=sessionmaker, dns=dns, interval_seconds=0, targets=targets) == 1
    got = (await dns_app.client.get(f"/domains/{created['ID']}", headers=ACCOUNT)).json()
    assert (got["ReturnPathDomainVerified"], got["TrackingDomainVerified"]) == (True, True)
    assert await check(dns_app.client, "links.example.org") == 200
