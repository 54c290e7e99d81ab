"""Reports received the way the MX listener hands them to the API (the internal inbound hop), shown
by `GET /domains/{id}/dmarc`, `GET /domains/{id}/tlsreports` and the console, and expired by retention."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

from api_service.dmarc.tasks import fill_ptrs
from api_service.domains.dns import lookup_for
from api_service.models import DmarcReport, DmarcReportRow, ReceivedTlsReport
from api_service.retention.tasks import purge_due
from shared.schemas.inbound_smtp import INBOUND_MESSAGE_PATH, INBOUND_RECIPIENT_PATH
from tests.api.conftest import MakeApp, OtherApp
from tests.api.core.dns_server import Zone, dns_server
from tests.api.dmarc.reports import Row, aggregate_xml, failure_mail, gzipped, report_mail, tls_json, zipped
from tests.console.conftest import signed_in_console
from tests.factories import ACCOUNT, create_domain

pytestmark = pytest.mark.asyncio

OURS = "192.0.2.10"
FORWARDER = "198.51.100.20"
SPOOFER = "203.0.113.9"
REPORTS = "dmarc@in.postgate.example"


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        running[0].ptr(OURS, "mta1.postgate.example")
        running[0].ptr(FORWARDER, "forward.lists.example")
        yield running


@pytest_asyncio.fixture
async def reports_app(other_app: MakeApp, zone: tuple[Zone, str]) -> OtherApp:
    return await other_app(dns_resolver=zone[1], inbound_domain="in.postgate.example", source_ips=OURS, dnsbl_zones="")


async def deliver(client: httpx.AsyncClient, raw: bytes, *rcpt_to: str) -> httpx.Response:
    body = {"MailFrom": "noreply@receiver.example", "RcptTo": list(rcpt_to or [REPORTS]), "RawMessage": base64.b64encode(raw).decode()}
    return await client.post(INBOUND_MESSAGE_PATH, json=body, headers=ACCOUNT)


async def get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def three_sources(report_id: str = "r-1") -> bytes:
    rows = [
        Row(OURS, 900, dkim="pass", spf="pass"),
        Row(FORWARDER, 40, dkim="pass", spf="fail"),
        Row(SPOOFER, 60, dkim="fail", spf="fail", disposition="reject", auth_dkim=[], auth_spf=[("spoofer.example", "pass")]),
    ]
    return report_mail(gzipped(aggregate_xml(rows, report_id=report_id, begin=int(datetime.now(UTC).timestamp()) - 86400)))


class TestAggregateReports:
    async def test_report_shows_up_per_source_as_soon_as_it_is_received(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        response = await deliver(reports_app.client, three_sources())
        assert response.status_code == 200, response.text
        [stored] = response.json()["MessageIDs"]
        assert stored.startswith("dmarc-")
        summary = await get(reports_app.client, f"/domains/{domain['ID']}/dmarc")
        assert (summary["Reports"], summary["Messages"], summary["NotPostgateMessages"]) == (1, 1000, 100)
        assert (summary["DMARCPassRate"], summary["SPFAlignedRate"], summary["DKIMAlignedRate"]) == (94.0, 90.0, 94.0)
        sources = {s["IP"]: s for s in summary["Sources"]}
        assert [s["IP"] for s in summary["Sources"]] == [OURS, SPOOFER, FORWARDER]  # largest first
        assert (sources[OURS]["PTR"], sources[OURS]["Classification"]) == ("mta1.postgate.example", "postgate")
        assert (sources[FORWARDER]["PTR"], sources[FORWARDER]["Classification"]) == ("forward.lists.example", "forwarded")
        assert (sources[SPOOFER]["PTR"], sources[SPOOFER]["Classification"]) == ("", "unauthenticated")
        assert sources[SPOOFER]["Disposition"] == {"none": 0, "quarantine": 0, "reject": 60}
        assert sources[OURS]["Reporters"] == ["Receiver Inc."]

    async def test_the_same_report_twice_is_counted_once(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        await deliver(reports_app.client, three_sources())
        again = await deliver(reports_app.client, report_mail(zipped(aggregate_xml([Row(OURS, 900)])), content_type="application/zip"))
        assert again.json()["MessageIDs"] == ["duplicate"]
        assert (await get(reports_app.client, f"/domains/{domain['ID']}/dmarc"))["Messages"] == 1000

    async def test_report_for_no_domain_here_is_refused(self, reports_app: OtherApp) -> None:
        response = await deliver(reports_app.client, three_sources())
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)

    async def test_mail_that_is_not_a_report_is_refused(self, reports_app: OtherApp) -> None:
        response = await deliver(reports_app.client, b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n")
        assert response.status_code == 422
        assert "Not a DMARC or TLS report" in response.json()["Message"]

    async def test_days_out_of_range_and_unknown_domain(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        bad = await reports_app.client.get(f"/domains/{domain['ID']}/dmarc?days=0", headers=ACCOUNT)
        assert bad.status_code == 422
        assert set(bad.json()) == {"ErrorCode", "Message"}
        missing = await reports_app.client.get("/domains/999/dmarc", headers=ACCOUNT)
        assert (missing.status_code, missing.json()["ErrorCode"]) == (404, 510)


class TestFailureAndTlsReports:
    async def test_failure_report_is_listed(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        assert (await deliver(reports_app.client, failure_mail())).status_code == 200
        [failure] = (await get(reports_app.client, f"/domains/{domain['ID']}/dmarc"))["FailureReports"]
        assert (failure["SourceIP"], failure["EnvelopeFrom"], failure["HeaderFrom"]) == (
            SPOOFER,
            "bounce@spoofer.example",
            "Billing <billing@example.org>",
        )
        assert "Auth-Failure: dmarc" in failure["Detail"]

    async def test_tls_report_to_the_tls_address(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        mail = report_mail(
            gzipped(tls_json()),
            content_type="application/tlsrpt+gzip",
            filename="r!example.org!1!2.json.gz",
            to="tls-rpt@in.postgate.example",
        )
        response = await deliver(reports_app.client, mail, "tls-rpt@in.postgate.example")
        assert response.json()["MessageIDs"][0].startswith("tls-")
        listed = await get(reports_app.client, f"/domains/{domain['ID']}/tlsreports")
        assert (listed["Successes"], listed["Failures"]) == (90, 3)
        [policy] = listed["Reports"][0]["Policies"]
        assert (policy["PolicyType"], policy["FailureDetails"][0]["ResultType"]) == ("sts", "certificate-expired")


class TestReportAddresses:
    async def test_the_listener_accepts_the_report_addresses(self, reports_app: OtherApp, zone: tuple[Zone, str]) -> None:
        async def accepted(address: str) -> bool:
            response = await reports_app.client.post(INBOUND_RECIPIENT_PATH, json={"Address": address}, headers=ACCOUNT)
            return bool(response.json()["Accepted"])

        assert await accepted(REPORTS)
        assert await accepted("tls-rpt@in.postgate.example")
        assert not await accepted("reports@example.org")
        domain = await create_domain(reports_app.client, "example.org")
        zone[0].txt("_dmarc.example.org", "v=DMARC1; p=none; rua=mailto:reports@example.org")
        await reports_app.client.put(f"/domains/{domain['ID']}/verifyDmarc", headers=ACCOUNT)
        assert await accepted("Reports@example.org")  # the rua the domain chose, once its record was checked
        response = await deliver(reports_app.client, three_sources(), "reports@example.org")
        assert response.status_code == 200, response.text


class TestShownAndExpired:
    async def test_console_page_shows_the_sources(self, reports_app: OtherApp) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        await deliver(reports_app.client, three_sources())
        reports_app.client.headers.pop("Accept", None)
        console = await signed_in_console(reports_app.client)
        page = await console.get(f"/console/domains/{domain['ID']}/reports")
        assert page.status_code == 200
        for text in (OURS, "mta1.postgate.example", FORWARDER, SPOOFER, "unauthenticated", "No TLS report yet"):
            assert text in page.text

    async def test_retention_deletes_old_reports(self, reports_app: OtherApp) -> None:
        await create_domain(reports_app.client, "example.org")
        await deliver(reports_app.client, three_sources())
        await deliver(reports_app.client, report_mail(gzipped(tls_json()), content_type="application/tlsrpt+gzip", filename="t.json.gz"))
        sessionmaker = reports_app.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            old = datetime.now(UTC) - timedelta(days=reports_app.settings.retention_days + 1)
            await session.execute(update(DmarcReport).values(created_at=old))
            await session.execute(update(ReceivedTlsReport).values(created_at=old))
        assert await purge_due(sessionmaker=sessionmaker, settings=reports_app.settings) >= 2
        async with sessionmaker() as session:
            assert (await session.execute(DmarcReport.__table__.select())).first() is None


class TestPtrBackfill:
    async def test_the_worker_fills_ptrs_missed_at_receipt(self, reports_app: OtherApp, zone: tuple[Zone, str]) -> None:
        domain = await create_domain(reports_app.client, "example.org")
        await deliver(reports_app.client, three_sources())
        sessionmaker = reports_app.app.state.sessionmaker
        async with sessionmaker() as session, session.begin():
            await session.execute(update(DmarcReportRow).values(ptr=None))  # as when the time budget ran out
        zone[0].ptr(SPOOFER, "dyn-9.isp.example")
        assert await fill_ptrs(sessionmaker=sessionmaker, dns=lookup_for(zone[1])) == 3
        assert await fill_ptrs(sessionmaker=sessionmaker, dns=lookup_for(zone[1])) == 0
        sources = {s["IP"]: s["PTR"] for s in (await get(reports_app.client, f"/domains/{domain['ID']}/dmarc"))["Sources"]}
        assert sources == {OURS: "mta1.postgate.example", FORWARDER: "forward.lists.example", SPOOFER: "dyn-9.isp.example"}


class TestClassification:
    async def test_without_source_ips_the_spf_text_value_networks_are_postgates(self, other_app: MakeApp, zone: tuple[Zone, str]) -> None:
        app = await other_app(
            dns_resolver=zone[1],
            inbound_domain="in.postgate.example",
            source_ips="",
            spf_text_value="v=spf1 ip4:192.0.2.0/28 include:relay.example ~all",
        )
        domain = await create_domain(app.client, "example.org")
        await deliver(app.client, three_sources())
        sources = {s["IP"]: s["Classification"] for s in (await get(app.client, f"/domains/{domain['ID']}/dmarc"))["Sources"]}
        assert sources == {OURS: "postgate", FORWARDER: "forwarded", SPOOFER: "unauthenticated"}
