"""TLS-RPT (RFC 8460): the report's JSON against a schema written from the RFC, and one day of real
deliveries (a failing and a good MX under an MTA-STS policy) reported to a real SMTP sink (the
rua's MX on 127.x.y.z:25) and to an https rua, then listed by the API."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import threading
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI

from api_service.delivery.tls_tasks import send_due_reports, store_sessions
from api_service.delivery.tlsrpt import Counted, build_report, mailto_address, parse_rua, policy_key
from tests.api.conftest import Worker
from tests.api.core.dns_server import Zone
from tests.api.delivery.pki import TestCa
from tests.api.delivery.test_mx import loopback_address, send
from tests.api.delivery.test_tls import DOMAIN, Servers, ca, policy, port_25, publish_sts, servers, worker, zone
from tests.conftest import ACCOUNT_TOKEN
from tests.console.conftest import signed_in_console
from tests.factories import ServerHandle

__all__ = ["ca", "port_25", "servers", "worker", "zone"]

RESULT_TYPES = [
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
]
COUNT = {"type": "integer", "minimum": 0}
STRINGS = {"type": "array", "items": {"type": "string"}}
# RFC 8460 §4.3-4.4 (with erratum 6241's mx-host array), written for these tests.
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
    "additionalProperties": False,
    "properties": {
        "organization-name": {"type": "string", "minLength": 1},
        "date-range": {
            "type": "object",
            "required": ["start-datetime", "end-datetime"],
            "additionalProperties": False,
            "properties": {
                "start-datetime": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
                "end-datetime": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
            },
        },
        "contact-info": {"type": "string", "minLength": 1},
        "report-id": {"type": "string", "minLength": 1},
        "policies": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["policy", "summary"],
                "additionalProperties": False,
                "properties": {
                    "policy": {
                        "type": "object",
                        "required": ["policy-type", "policy-domain"],
                        "additionalProperties": False,
                        "properties": {
                            "policy-type": {"enum": ["tlsa", "sts", "no-policy-found"]},
                            "policy-string": STRINGS,
                            "policy-domain": {"type": "string", "minLength": 1},
                            "mx-host": STRINGS,
                        },
                    },
                    "summary": {
                        "type": "object",
                        "required": ["total-successful-session-count", "total-failure-session-count"],
                        "additionalProperties": False,
                        "properties": {"total-successful-session-count": COUNT, "total-failure-session-count": COUNT},
                    },
                    "failure-details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["result-type", "failed-session-count"],
                            "additionalProperties": False,
                            "properties": {
                                "result-type": {"enum": RESULT_TYPES},
                                "sending-mta-ip": {"type": "string"},
                                "receiving-mx-hostname": {"type": "string"},
                                "receiving-mx-helo": {"type": "string"},
                                "receiving-ip": {"type": "string"},
                                "failed-session-count": {"type": "integer", "minimum": 1},
                                "additional-information": {"type": "string"},
                                "failure-reason-code": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
VALIDATOR = jsonschema_rs.validator_for(REPORT_SCHEMA)


class TestReportShape:
    def test_policies_summaries_and_failures_follow_the_rfc(self) -> None:
        strings = ["version: STSv1", "mode: enforce", "mx: *.example.net", "max_age: 86400"]
        key = policy_key("sts", strings)
        rows = [
            Counted(key, "sts", strings, ["*.example.net"], "", "", "", 7),
            Counted(key, "sts", strings, ["*.example.net"], "certificate-host-mismatch", "mx1.example.net", "192.0.2.1", 2),
            Counted(policy_key("no-policy-found", []), "no-policy-found", [], [], "", "", "", 3),
        ]
        report = build_report(
            domain="example.net",
            day=date(2026, 12, 7),
            rows=rows,
            organization="mx.postgate.test",
            contact="postmaster@x.test",
            report_id="r1",
        )
        VALIDATOR.validate(report)
        assert report["date-range"] == {"start-datetime": "2026-12-07T00:00:00Z", "end-datetime": "2026-12-07T23:59:59Z"}
        sts, none = report["policies"]
        assert sts["policy"] == {
            "policy-type": "sts",
            "policy-string": strings,
            "policy-domain": "example.net",
            "mx-host": ["*.example.net"],
        }
        assert sts["summary"] == {"total-successful-session-count": 7, "total-failure-session-count": 2}
        assert sts["failure-details"] == [
            {
                "result-type": "certificate-host-mismatch",
                "receiving-mx-hostname": "mx1.example.net",
                "receiving-ip": "192.0.2.1",
                "failed-session-count": 2,
            }
        ]
        assert none == {
            "policy": {"policy-type": "no-policy-found", "policy-domain": "example.net"},
            "summary": {"total-successful-session-count": 3, "total-failure-session-count": 0},
        }


class TestRua:
    @pytest.mark.parametrize(
        ("texts", "expected"),
        [
            (["v=TLSRPTv1; rua=mailto:tls@example.net"], ["mailto:tls@example.net"]),
            (["v=TLSRPTv1;rua=mailto:a@x.test,https://r.x.test/tls"], ["mailto:a@x.test", "https://r.x.test/tls"]),
            (["v=TLSRPTv1; rua=http://insecure.test/,ftp://x"], []),
            (["v=spf1 -all"], []),
            (["v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"], []),  # two records: none
        ],
    )
    def test_parse(self, texts: list[str], expected: list[str]) -> None:
        assert parse_rua(texts) == expected

    def test_mailto_address(self) -> None:
        assert mailto_address("mailto:tls%2Breports@example.net?subject=x") == "tls+reports@example.net"
        assert mailto_address("mailto:not-an-address") is None


class HttpsRua:
    def __init__(self, ca: TestCa, host: str) -> None:
        self.posts: list[tuple[str, bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append((self.headers.get("Content-Type", ""), self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.ip = loopback_address()
        self.server = ThreadingHTTPServer((self.ip, 443), Handler)
        self.server.socket = ca.issue(host).server_context().wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attachment(message: Message) -> tuple[str, str, bytes]:
    [part] = [p for p in message.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part.get_content_type(), part.get_filename() or "", payload


@pytest.mark.asyncio
@pytest.mark.slow
class TestDailyReport:
    async def test_a_days_sessions_are_mailed_and_posted_to_the_rua(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        dns = zone[0]
        bad_ip, bad = servers.mx(ca.issue("wrong.example.com"))
        good_ip, good = servers.mx(ca.issue("mx2.example.net"))
        dns.mx(DOMAIN, (10, "mx1.example.net"), (20, "mx2.example.net"))
        dns.a("mx1.example.net", bad_ip)
        dns.a("mx2.example.net", good_ip)
        publish_sts(dns, servers, policy("enforce", "*.example.net"))
        sink_ip, sink = servers.mx(None)
        dns.mx("reports.example.net", (10, "sink.reports.example.net"))
        dns.a("sink.reports.example.net", sink_ip)
        rua = HttpsRua(ca, "rua.example.net")
        servers.stops.append(rua.close)
        dns.a("rua.example.net", rua.ip)
        dns.txt(f"_smtp._tls.{DOMAIN}", "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net,https://rua.example.net/v1/tlsrpt")

        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert bad.mails == []
        assert len(good.received) == 1

        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        sessionmaker = app.state.sessionmaker
        reported = await send_due_reports(
            sessionmaker=sessionmaker, transport=worker.transport, settings=worker.settings, helo="mx.postgate.test", today=tomorrow
        )
        assert reported == 1
        [mail] = sink.received
        assert mail.rcpt_tos == ["tlsrpt@reports.example.net"]
        message = email.message_from_bytes(mail.data, policy=email.policy.default)
        assert message.get_content_type() == "multipart/report"
        assert message.get_param("report-type") == "tlsrpt"
        assert message["TLS-Report-Domain"] == DOMAIN
        assert message["TLS-Report-Submitter"] == "mx.postgate.test"
        kind, filename, compressed = attachment(message)
        assert kind == "application/tlsrpt+gzip"
        report = json.loads(gzip.decompress(compressed))
        VALIDATOR.validate(report)
        assert message["Subject"] == f"Report Domain: {DOMAIN} Submitter: mx.postgate.test Report-ID: <{report['report-id']}>"
        today = tomorrow - timedelta(days=1)
        start = int(datetime.combine(today, datetime.min.time(), tzinfo=UTC).timestamp())
        assert filename.startswith(f"mx.postgate.test!{DOMAIN}!{start}!{start + 86399}!")
        assert filename.endswith(".json.gz")
        [entry] = report["policies"]
        assert entry["policy"]["policy-type"] == "sts"
        assert "mode: enforce" in entry["policy"]["policy-string"]
        assert entry["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 1}
        failures = [dict(d) for d in entry["failure-details"]]
        assert failures[0].pop("sending-mta-ip").startswith("127.")  # our side of the failed session
        assert failures == [
            {
                "result-type": "certificate-host-mismatch",
                "receiving-mx-hostname": "mx1.example.net",
                "receiving-ip": bad_ip,
                "failed-session-count": 1,
            }
        ]
        [(content_type, body)] = rua.posts
        assert content_type == "application/tlsrpt+gzip"
        assert json.loads(gzip.decompress(body)) == report

        # Not sent twice.
        await send_due_reports(
            sessionmaker=sessionmaker, transport=worker.transport, settings=worker.settings, helo="mx.postgate.test", today=tomorrow
        )
        assert len(sink.received) == 1

        headers = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        listed = (await client.get("/delivery/tls-reports?count=10&offset=0&domain=example.net", headers=headers)).json()
        assert listed["TotalCount"] == 1
        [row] = listed["TlsReports"]
        assert row["Status"] == "sent"
        assert row["SuccessfulSessions"] == 1
        assert row["FailedSessions"] == 1
        assert row["Rua"] == ["mailto:tlsrpt@reports.example.net", "https://rua.example.net/v1/tlsrpt"]
        one = (await client.get(f"/delivery/tls-reports/{row['ID']}", headers=headers)).json()
        assert one["Report"] == report

        console = await signed_in_console(client)
        page = (await console.get("/console/tls-reports", domain=DOMAIN)).text
        assert report["report-id"] in page
        assert "mailto:tlsrpt@reports.example.net" in page

    async def test_a_domain_without_a_tlsrpt_record_gets_no_report(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        zone: tuple[Zone, str],
        servers: Servers,
        ca: TestCa,
    ) -> None:
        ip, handler = servers.mx(None)  # no STARTTLS at all
        zone[0].mx(DOMAIN, (10, "mx.example.net"))
        zone[0].a("mx.example.net", ip)
        await send(client, server, "ok@example.net")
        await worker.deliver()
        assert len(handler.received) == 1
        await store_sessions(sessionmaker=app.state.sessionmaker, counter=worker.transport.tls.sessions)
        console = await signed_in_console(client)
        page = (await console.get("/console/tls-reports")).text
        assert "starttls-not-supported: 1" in page  # counted, not reported yet

        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        await send_due_reports(
            sessionmaker=app.state.sessionmaker,
            transport=worker.transport,
            settings=worker.settings,
            helo="mx.postgate.test",
            today=tomorrow,
        )
        assert len(handler.received) == 1  # nothing mailed
        headers = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        [row] = (await client.get("/delivery/tls-reports?count=10&offset=0", headers=headers)).json()["TlsReports"]
        assert (row["Domain"], row["Status"], row["FailedSessions"]) == (DOMAIN, "no-rua", 1)

    async def test_unknown_report_is_a_postmark_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/delivery/tls-reports/999999", headers={"X-Postmark-Account-Token": ACCOUNT_TOKEN})
        assert response.status_code == 404
        assert response.json()["ErrorCode"] == 1471

    async def test_account_token_required(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/delivery/tls-reports?count=10&offset=0")
        assert response.status_code == 401


@pytest.mark.asyncio
class TestListing:
    @pytest.mark.parametrize("domain", ["%00", "a%00b", "%C3%A9", "x" * 253])
    async def test_any_domain_filter_is_answered(self, client: httpx.AsyncClient, domain: str) -> None:
        response = await client.get(
            f"/delivery/tls-reports?count=10&offset=0&domain={domain}", headers={"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        )
        assert response.status_code in (200, 422), response.text
        assert "ErrorCode" in response.json() or response.json()["TotalCount"] == 0

    async def test_count_is_required(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/delivery/tls-reports", headers={"X-Postmark-Account-Token": ACCOUNT_TOKEN})
        assert response.status_code == 422
        assert "ErrorCode" in response.json()
