"""The report parsers on samples of the tests' own making, and hypothesis on generated reports."""

from __future__ import annotations

import contextlib
import gzip
import json
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.dmarc import parsing
from tests.api.dmarc.reports import Row, aggregate_xml, failure_mail, gzipped, report_mail, tls_json, zipped


class TestAggregate:
    def test_fields_and_records(self) -> None:
        report = parsing.parse_aggregate(
            aggregate_xml([Row("192.0.2.10", 120), Row("203.0.113.9", 4, dkim="fail", spf="fail", disposition="none")])
        )
        assert (report.org_name, report.report_id, report.domain, report.policy["p"]) == ("Receiver Inc.", "r-1", "example.org", "none")
        assert report.begin.isoformat() == "2024-12-01T00:00:00+00:00"
        first, second = report.records
        assert (first.source_ip, first.count, first.dkim_aligned, first.spf_aligned) == ("192.0.2.10", 120, True, False)
        assert first.dkim[0] == parsing.AuthResult(domain="example.org", selector="pg1", result="pass")
        assert (second.dkim_aligned, second.spf_aligned) == (False, False)

    def test_dmarcbis_namespace_reads_alike(self) -> None:
        report = parsing.parse_aggregate(aggregate_xml([Row("192.0.2.10", 1)], namespace="urn:ietf:params:xml:ns:dmarc-2.0"))
        assert report.records[0].source_ip == "192.0.2.10"

    @pytest.mark.parametrize("pack", [lambda b: b, gzipped, zipped])
    def test_plain_gzip_and_zip_attachments(self, pack: object) -> None:
        attachment = pack(aggregate_xml([Row("192.0.2.10", 7)]))  # type: ignore[operator]
        [report] = parsing.reports_in(report_mail(attachment, content_type="application/octet-stream"))
        assert isinstance(report, parsing.AggregateReport)
        assert report.records[0].count == 7

    def test_entities_are_refused(self) -> None:
        bomb = b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><feedback>&b;</feedback>'
        with pytest.raises(parsing.ReportError):
            parsing.parse_aggregate(bomb)

    def test_gzip_bomb_stops_at_the_cap(self) -> None:
        bomb = gzip.compress(b"\0" * (parsing.MAX_REPORT_BYTES + 10), compresslevel=9)
        with pytest.raises(parsing.ReportError, match="inflates past"):
            parsing.unpack(bomb)

    def test_zip_bomb_stops_at_the_cap(self) -> None:
        with pytest.raises(parsing.ReportError, match="inflates past"):
            parsing.unpack(zipped(b"\0" * (parsing.MAX_REPORT_BYTES + 10)))

    def test_bad_source_ip_is_refused(self) -> None:
        with pytest.raises(parsing.ReportError, match="source_ip"):
            parsing.parse_aggregate(aggregate_xml([Row("not-an-ip", 1)]))

    def test_mail_without_a_report_is_refused(self) -> None:
        with pytest.raises(parsing.ReportError, match="no DMARC or TLS report"):
            parsing.reports_in(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n")


class TestFailureAndTls:
    def test_auth_failure_report(self) -> None:
        [report] = parsing.reports_in(failure_mail())
        assert isinstance(report, parsing.FailureReport)
        assert (report.domain, report.source_ip, report.envelope_from, report.auth_failure) == (
            "example.org",
            "203.0.113.9",
            "bounce@spoofer.example",
            "dmarc",
        )
        assert report.header_from == "Billing <billing@example.org>"
        assert report.subject == "Your invoice"

    def test_tls_report_gzip(self) -> None:
        mail = report_mail(
            gzipped(tls_json()), content_type="application/tlsrpt+gzip", filename="receiver.example!example.org!1!2!tls-1.json.gz"
        )
        [report] = parsing.reports_in(mail)
        assert isinstance(report, parsing.TlsReport)
        [policy] = report.policies
        assert (policy.policy_type, policy.policy_domain, policy.successes, policy.failures) == ("sts", "example.org", 90, 3)
        assert policy.failure_details[0].result_type == "certificate-expired"

    def test_tls_report_of_the_wrong_shape_is_refused(self) -> None:
        with pytest.raises(parsing.ReportError):
            parsing.parse_tls(b'{"policies": "none"}')


ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
results = st.sampled_from(["pass", "fail"])
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() == s
)
rows = st.builds(
    Row,
    ip=ips,
    count=st.integers(min_value=0, max_value=10**9),
    header_from=st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True),
    dkim=results,
    spf=results,
    disposition=st.sampled_from(["none", "quarantine", "reject"]),
    auth_dkim=st.lists(
        st.tuples(st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True), st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), results),
        max_size=3,
    ),
    auth_spf=st.lists(st.tuples(st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True), results), max_size=2),
)


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(
        records=st.lists(rows, max_size=8),
        org=texts,
        report_id=texts,
        begin=st.integers(min_value=0, max_value=2**32),
        packing=st.sampled_from(["plain", "gzip", "zip"]),
    )
    def test_generated_reports_parse_back(self, records: list[Row], org: str, report_id: str, begin: int, packing: str) -> None:
        xml = aggregate_xml(records, org=org, report_id=report_id, begin=begin)
        attachment = {"plain": xml, "gzip": gzipped(xml), "zip": zipped(xml)}[packing]
        [report] = parsing.reports_in(report_mail(attachment, content_type="application/octet-stream"))
        assert isinstance(report, parsing.AggregateReport)
        assert (report.org_name, report.report_id, int(report.begin.timestamp())) == (org[:255], report_id[:255], begin)
        assert len(report.records) == len(records)
        for got, want in zip(report.records, records, strict=True):
            ip = IPv6Address(want.ip) if ":" in want.ip else IPv4Address(want.ip)
            assert got.source_ip == str(ip)
            assert (got.count, got.dkim_aligned, got.spf_aligned, got.disposition) == (
                want.count,
                want.dkim == "pass",
                want.spf == "pass",
                want.disposition,
            )
            assert [(a.domain, a.selector, a.result) for a in got.dkim] == want.auth_dkim
            assert [(a.domain, a.result) for a in got.spf] == want.auth_spf

    @settings(max_examples=200, deadline=None)
    @given(data=st.binary(max_size=2000))
    def test_any_bytes_are_a_report_or_a_report_error(self, data: bytes) -> None:
        for parse in (parsing.parse_aggregate, parsing.parse_tls, parsing.unpack, parsing.reports_in):
            with contextlib.suppress(parsing.ReportError):
                parse(data)

    @settings(max_examples=100, deadline=None)
    @given(records=st.lists(rows, min_size=1, max_size=3), cut=st.integers(min_value=1, max_value=4000))
    def test_truncated_reports_are_refused_cleanly(self, records: list[Row], cut: int) -> None:
        xml = aggregate_xml(records)
        try:
            parsing.parse_aggregate(xml[: min(cut, len(xml) - 1)])
        except parsing.ReportError:
            return
        raise AssertionError("a truncated report parsed")


failure_details = st.fixed_dictionaries(
    {
        "result-type": st.sampled_from(["starttls-not-supported", "certificate-expired", "validation-failure", "sts-policy-invalid"]),
        "sending-mta-ip": ips,
        "receiving-mx-hostname": st.from_regex(r"mx[0-9]\.[a-z]{1,8}\.example", fullmatch=True),
        "failed-session-count": st.integers(min_value=0, max_value=10**9),
    }
)
tls_policies = st.fixed_dictionaries(
    {
        "policy": st.fixed_dictionaries(
            {
                "policy-type": st.sampled_from(["sts", "tlsa", "no-policy-found"]),
                "policy-domain": st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True),
            }
        ),
        "summary": st.fixed_dictionaries(
            {
                "total-successful-session-count": st.integers(min_value=0, max_value=10**9),
                "total-failure-session-count": st.integers(min_value=0, max_value=10**9),
            }
        ),
        "failure-details": st.lists(failure_details, max_size=4),
    }
)


class TestTlsProperties:
    @settings(max_examples=60, deadline=None)
    @given(policies=st.lists(tls_policies, min_size=1, max_size=4), org=texts, report_id=texts, gz=st.booleans())
    def test_generated_tls_reports_parse_back(self, policies: list[dict[str, Any]], org: str, report_id: str, gz: bool) -> None:
        body = {
            "organization-name": org,
            "date-range": {"start-datetime": "2026-12-01T00:00:00Z", "end-datetime": "2026-12-01T23:59:59Z"},
            "contact-info": "tls@receiver.example",
            "report-id": report_id,
            "policies": policies,
        }
        data = json.dumps(body).encode()
        [report] = parsing.reports_in(
            report_mail(
                gzipped(data) if gz else data,
                content_type="application/tlsrpt+gzip" if gz else "application/tlsrpt+json",
                filename="r.json",
            )
        )
        assert isinstance(report, parsing.TlsReport)
        assert (report.org_name, report.report_id) == (org[:255], report_id[:255])
        for got, want in zip(report.policies, policies, strict=True):
            assert (got.policy_type, got.policy_domain) == (want["policy"]["policy-type"], want["policy"]["policy-domain"])
            assert (got.successes, got.failures) == (
                want["summary"]["total-successful-session-count"],
                want["summary"]["total-failure-session-count"],
            )
            assert [(f.result_type, f.failed_session_count) for f in got.failure_details] == [
                (d["result-type"], d["failed-session-count"]) for d in want["failure-details"]
            ]
