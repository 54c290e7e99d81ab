"""Sender health: the pure verdicts, the SPF evaluator and the checks over the tests' DNS server,
and the API (`PUT /domains/{id}/verifyDmarc`, `GET /domains/{id}/health`) and the worker's round."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import update

from api_service.core import metrics
from api_service.domains import health
from api_service.domains.dns import lookup_for
from api_service.domains.health_service import health_config
from api_service.domains.spf_check import check_host
from api_service.domains.tasks import check_health
from api_service.models import Bounce, MessageRecipient, RecipientStatus
from shared.constants import BounceType, HealthStatus
from shared.schemas.inbound_smtp import INBOUND_RECIPIENT_PATH
from tests.api.conftest import MakeApp, OtherApp
from tests.api.core.dns_server import Zone, dns_server
from tests.console.conftest import signed_in_console
from tests.factories import ACCOUNT, create_domain, create_server, message

IP = "192.0.2.10"
HELO = "mta1.postgate.example"
ZONES = "zen.bl.test,b.bl.test,cop.bl.test"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest_asyncio.fixture
async def health_app(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    return await other_app(
        dns_resolver=zone[1],
        return_path_domain="bounces.postgate.example",
        inbound_domain="in.postgate.example",
        source_ips=IP,
        helo_name=HELO,
        dnsbl_zones=ZONES,
    )


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in body["Checks"]}


def healthy_ip(zone: Zone) -> None:
    zone.ptr(IP, HELO)
    zone.a(HELO, IP)


class TestVerdicts:
    def test_dmarc_tags_and_report_addresses(self) -> None:
        tags = health.dmarc_tags("v=DMARC1; p=reject; rua=mailto:a@x.example!10m, mailto:B@y.example; ADKIM=s")
        assert (tags["p"], tags["adkim"]) == ("reject", "s")
        assert health.mailto_addresses(tags["rua"]) == ["a@x.example", "b@y.example"]

    def test_with_tag_replaces_or_appends(self) -> None:
        assert health.with_tag("v=DMARC1; p=none; rua=mailto:a@b", "p", "quarantine") == "v=DMARC1; p=quarantine; rua=mailto:a@b"
        assert health.with_tag("v=DMARC1; p=none", "pct", "100") == "v=DMARC1; p=none; pct=100"

    def test_suggested_spf_adds_the_missing_ips_before_all(self) -> None:
        record = health.suggested_spf("v=spf1 include:relay.example ~all", missing=[IP, "2001:db8::1"], fallback="v=spf1 a mx ~all")
        assert record == f"v=spf1 include:relay.example ip4:{IP} ip6:2001:db8::1 ~all"
        assert health.suggested_spf(None, missing=[IP], fallback="v=spf1 mx ~all") == f"v=spf1 mx ip4:{IP} ~all"

    @pytest.mark.parametrize(
        ("complained", "status"), [(0, health.PASS), (1, health.WARN), (2, health.WARN), (3, health.FAIL), (40, health.FAIL)]
    )
    def test_complaint_rate_against_gmails_lines(self, complained: int, status: HealthStatus) -> None:
        checks = {c.name: c for c in health.rate_checks(health.Rates(sent=1000, bounced=0, complained=complained))}
        assert checks["complaint_rate"].status is status
        assert "0.3%" in checks["complaint_rate"].why

    def test_bounce_rate(self) -> None:
        checks = {c.name: c for c in health.rate_checks(health.Rates(sent=100, bounced=6, complained=0))}
        assert checks["bounce_rate"].status is health.FAIL
        assert checks["bounce_rate"].fix

    def test_blocklist_names(self) -> None:
        assert health.blocklist_name("192.0.2.10", "zen.spamhaus.org") == "10.2.0.192.zen.spamhaus.org"
        assert health.blocklist_name("2001:db8::1", "bl.test").endswith(".8.b.d.0.1.0.0.2.bl.test")

    def test_blocklist_refusal_is_not_a_listing(self) -> None:
        check = health.blocklist_check(ip=IP, zone="zen.spamhaus.org", answers=["127.255.255.254"], failed=False)
        assert check.status is health.WARN
        assert "refused" in check.why


@pytest.mark.asyncio
class TestSpfEvaluation:
    async def test_include_and_redirect_are_followed(self, zone: tuple[Zone, str]) -> None:
        zone[0].txt("example.org", "v=spf1 include:_spf.relay.example redirect=_spf.example.org")
        zone[0].txt("_spf.relay.example", "v=spf1 ip4:198.51.100.0/24 -all")
        zone[0].txt("_spf.example.org", f"v=spf1 a:{HELO} -all")
        zone[0].a(HELO, IP)
        dns = lookup_for(zone[1])
        assert (await check_host("198.51.100.7", "example.org", dns=dns)).result == "pass"
        assert (await check_host(IP, "example.org", dns=dns)).result == "pass"
        assert (await check_host("203.0.113.1", "example.org", dns=dns)).result == "fail"

    async def test_more_than_ten_lookups_is_a_permerror(self, zone: tuple[Zone, str]) -> None:
        zone[0].txt("example.org", "v=spf1 " + " ".join(f"include:s{i}.example.org" for i in range(11)) + " -all")
        for i in range(11):
            zone[0].txt(f"s{i}.example.org", "v=spf1 ip4:203.0.113.1 -all")
        outcome = await check_host(IP, "example.org", dns=lookup_for(zone[1]))
        assert outcome.result == "permerror"
        assert "10 DNS look-ups" in outcome.why

    async def test_mx_with_cidr_length(self, zone: tuple[Zone, str]) -> None:
        zone[0].txt("example.org", "v=spf1 mx/24 -all")
        zone[0].mx("example.org", (10, "mx.example.org"))
        zone[0].a("mx.example.org", "192.0.2.200")
        assert (await check_host(IP, "example.org", dns=lookup_for(zone[1]))).result == "pass"


@pytest.mark.asyncio
class TestDomainHealthApi:
    async def test_missing_records_each_name_the_fix(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        response = await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["Status"] == "fail"
        checks = by_name(body)
        assert checks["dmarc"]["Status"] == "fail"
        assert (checks["dmarc"]["Host"], checks["dmarc"]["Type"]) == ("_dmarc.example.org", "TXT")
        assert checks["dmarc"]["Record"] == "v=DMARC1; p=none; rua=mailto:dmarc@in.postgate.example"
        assert (checks["dkim"]["Status"], checks["dkim"]["Host"], checks["dkim"]["Record"]) == (
            "fail",
            created["DKIMHost"],
            created["DKIMTextValue"],
        )
        assert checks["spf"]["Status"] == "fail"
        assert checks["spf"]["Record"] == f"v=spf1 a mx ip4:{IP} ~all"
        ip = body["SourceIPs"][0]
        assert ip["IP"] == IP
        ip_checks = by_name(ip)
        assert ip_checks["ptr"]["Status"] == "fail"
        assert ip_checks["ptr"]["Record"] == HELO
        assert ip_checks["helo"]["Status"] == "fail"
        assert {ip_checks[f"dnsbl:{z}"]["Status"] for z in ZONES.split(",")} == {"pass"}
        assert metrics.SENDER_HEALTH.labels("example.org", "dmarc")._value.get() == 2

    async def test_published_records_pass(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        z = zone[0]
        z.txt(created["DKIMHost"], created["DKIMTextValue"])
        z.txt("example.org", f"v=spf1 ip4:{IP} -all")
        z.txt("bounces.postgate.example", f"v=spf1 ip4:{IP} -all")
        z.txt("_dmarc.example.org", "v=DMARC1; p=reject; rua=mailto:dmarc@in.postgate.example")
        z.txt("example.org._report._dmarc.in.postgate.example", "v=DMARC1")
        healthy_ip(z)
        body = (await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)).json()
        checks = by_name(body)
        assert {
            n: checks[n]["Status"] for n in ("dkim", "spf", "spf_envelope", "dmarc", "dmarc_reports", "dmarc_report_authorization")
        } == {
            "dkim": "pass",
            "spf": "pass",
            "spf_envelope": "pass",
            "dmarc": "pass",
            "dmarc_reports": "pass",
            "dmarc_report_authorization": "pass",
        }
        # The envelope domain is Postgate's until a ReturnPathDomain is verified: SPF does not align.
        assert checks["dmarc_alignment"]["Status"] == "warn"
        assert (checks["dmarc_alignment"]["Type"], checks["dmarc_alignment"]["Record"]) == ("CNAME", "bounces.postgate.example")
        ip_checks = by_name(body["SourceIPs"][0])
        assert (ip_checks["ptr"]["Status"], ip_checks["helo"]["Status"]) == ("pass", "pass")
        stored = (await health_app.client.get(f"/domains/{created['ID']}/health", headers=ACCOUNT)).json()
        assert stored["CheckedAt"] == body["CheckedAt"]
        assert stored["Checks"] == body["Checks"]

    async def test_policy_none_warns_with_the_stronger_record(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "mail.example.org")
        zone[0].txt("_dmarc.example.org", "v=DMARC1; p=reject; sp=none; aspf=s")
        checks = by_name((await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)).json())
        assert checks["dmarc"]["Status"] == "warn"
        assert "covers mail.example.org" in checks["dmarc"]["Why"]
        assert checks["dmarc"]["Record"] == "v=DMARC1; p=quarantine; sp=none; aspf=s"
        assert checks["dmarc_reports"]["Status"] == "warn"
        assert "rua=mailto:dmarc@in.postgate.example" in checks["dmarc_reports"]["Record"]

    async def test_listed_ip_fails_and_unreachable_blocklist_warns(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        healthy_ip(zone[0])
        zone[0].a("10.2.0.192.zen.bl.test", "127.0.0.2")
        zone[0].fail("10.2.0.192.cop.bl.test")
        body = (await health_app.client.get(f"/domains/{created['ID']}/health", headers=ACCOUNT)).json()
        ip_checks = by_name(body["SourceIPs"][0])
        assert ip_checks["dnsbl:zen.bl.test"]["Status"] == "fail"
        assert "127.0.0.2" in ip_checks["dnsbl:zen.bl.test"]["Why"]
        assert ip_checks["dnsbl:cop.bl.test"]["Status"] == "warn"
        assert ip_checks["dnsbl:b.bl.test"]["Status"] == "pass"

    async def test_ptr_without_forward_confirmation_fails(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        zone[0].ptr(IP, "host-10.provider.example")
        zone[0].a(HELO, IP)
        body = (await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)).json()
        ip_checks = by_name(body["SourceIPs"][0])
        assert ip_checks["ptr"]["Status"] == "fail"
        assert (ip_checks["ptr"]["Host"], ip_checks["ptr"]["Record"]) == (
            "host-10.provider.example",
            IP,
        )
        assert ip_checks["helo"]["Status"] == "warn"
        assert ip_checks["helo"]["Type"] == "PTR"

    async def test_unknown_domain_returns_510(self, health_app: OtherApp) -> None:
        response = await health_app.client.get("/domains/999/health", headers=ACCOUNT)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 510)

    async def test_without_source_ips_direct_delivery_warns(self, other_app: MakeApp, zone: tuple[Zone, str]) -> None:
        app = await other_app(dns_resolver=zone[1], source_ips="", outbound_relay="mx")
        created = await create_domain(app.client, "example.org")
        body = (await app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)).json()
        assert [c["Name"] for c in body["SourceIPs"][0]["Checks"]] == ["source_ips"]
        assert body["SourceIPs"][0]["Status"] == "warn"


@pytest.mark.asyncio
class TestWorkerRound:
    async def test_due_domains_and_ips_are_checked_once_per_interval(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        sessionmaker = health_app.app.state.sessionmaker
        config = health_config(health_app.settings, helo=HELO)
        dns = lookup_for(zone[1])
        assert await check_health(sessionmaker=sessionmaker, dns=dns, config=config, interval_seconds=3600) == 2  # the domain and the IP
        assert await check_health(sessionmaker=sessionmaker, dns=dns, config=config, interval_seconds=3600) == 0
        zone[0].txt("_dmarc.example.org", "v=DMARC1; p=reject; rua=mailto:reports@elsewhere.example")
        assert await check_health(sessionmaker=sessionmaker, dns=dns, config=config, interval_seconds=0) == 2
        body = (await health_app.client.get(f"/domains/{created['ID']}/health", headers=ACCOUNT)).json()
        checks = by_name(body)
        assert checks["dmarc"]["Status"] == "pass"
        auth = checks["dmarc_report_authorization"]
        assert (auth["Status"], auth["Host"], auth["Record"]) == ("warn", "example.org._report._dmarc.elsewhere.example", "v=DMARC1")


@pytest.mark.asyncio
class TestConsolePage:
    async def test_page_lists_each_failing_record_with_the_fix_and_checks_on_demand(
        self, health_app: OtherApp, zone: tuple[Zone, str]
    ) -> None:
        created = await create_domain(health_app.client, "example.org")
        health_app.client.headers.pop("Accept", None)
        console = await signed_in_console(health_app.client)
        page = await console.get("/console/health")
        assert page.status_code == 200
        assert "Not checked yet" in page.text
        checked = await console.post(f"/console/health/{created['ID']}/check")
        assert checked.status_code == 303
        assert checked.headers["location"].endswith(f"#domain-{created['ID']}")
        page = await console.get("/console/health")
        assert "_dmarc.example.org" in page.text
        assert "v=DMARC1; p=none; rua=mailto:dmarc@in.postgate.example" in page.text
        assert html.escape(created["DKIMTextValue"]) in page.text
        assert f"ip4:{IP}" in page.text
        assert HELO in page.text

    async def test_check_needs_the_csrf_token(self, health_app: OtherApp) -> None:
        created = await create_domain(health_app.client, "example.org")
        health_app.client.headers.pop("Accept", None)
        await signed_in_console(health_app.client)
        refused = await health_app.client.post(f"/console/health/{created['ID']}/check", data={})
        assert refused.status_code in (400, 403)


@pytest.mark.asyncio
class TestRatesFromTheDatabase:
    async def test_hard_bounces_and_complaints_of_the_last_week_count(self, other_app: MakeApp, zone: tuple[Zone, str]) -> None:
        app = await other_app(dns_resolver=zone[1], sender_auto_confirm=True, source_ips="")
        domain = await create_domain(app.client, "example.org")
        server = await create_server(app.client)
        to = ", ".join(f"r{i}@example.net" for i in range(20))
        sent = await app.client.post("/email", json=message(From="news@example.org", To=to), headers=server.headers)
        assert sent.status_code == 200, sent.text
        other = await app.client.post("/email", json=message(From="x@other.example", To="r@example.net"), headers=server.headers)
        assert other.status_code in (200, 422)
        async with app.app.state.sessionmaker() as session, session.begin():
            await session.execute(update(MessageRecipient).values(status=RecipientStatus.DELIVERED))
            old = datetime.now(UTC) - timedelta(days=8)
            for kind, when in (
                (BounceType.HARD_BOUNCE, None),
                (BounceType.SPAM_COMPLAINT, None),
                (BounceType.SPAM_COMPLAINT, old),
                (BounceType.TRANSIENT, None),
            ):
                row = Bounce(
                    server_id=server.id,
                    message_stream="outbound",
                    type=kind,
                    type_code=1,
                    email="r1@example.net",
                    from_email="news@example.org",
                )
                if when is not None:
                    row.bounced_at = when
                session.add(row)
        checks = by_name((await app.client.put(f"/domains/{domain['ID']}/verifyDmarc", headers=ACCOUNT)).json())
        assert checks["bounce_rate"]["Status"] == "fail"
        assert "1 hard bounces of 20 recipients" in checks["bounce_rate"]["Why"]
        assert checks["complaint_rate"]["Status"] == "fail"
        assert "1 spam complaints of 20 recipients" in checks["complaint_rate"]["Why"]


@pytest.mark.asyncio
class TestDnsFailures:
    async def test_a_failing_dmarc_lookup_warns_instead_of_failing(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        zone[0].fail("_dmarc.example.org")
        checks = by_name((await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)).json())
        assert checks["dmarc"]["Status"] == "warn"
        assert "could not be looked up" in checks["dmarc"]["Why"]
        assert "dmarc_alignment" not in checks

    async def test_a_failing_lookup_keeps_the_known_report_addresses(self, health_app: OtherApp, zone: tuple[Zone, str]) -> None:
        created = await create_domain(health_app.client, "example.org")
        zone[0].txt("_dmarc.example.org", "v=DMARC1; p=reject; rua=mailto:reports@example.org")
        await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)
        zone[0].fail("_dmarc.example.org")
        await health_app.client.put(f"/domains/{created['ID']}/verifyDmarc", headers=ACCOUNT)
        check = await health_app.client.post(INBOUND_RECIPIENT_PATH, json={"Address": "reports@example.org"}, headers=ACCOUNT)
        assert check.json()["Accepted"] is True
