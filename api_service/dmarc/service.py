"""The reports received for the domains: which addresses take them (DMARC_REPORT_ADDRESS,
TLS_REPORT_ADDRESS, and any rua/ruf a domain's DMARC or TLS-RPT record names), storing them as they
arrive (so an aggregate report shows up per source as soon as the inbound listener has it), the
per-domain summary, and retention."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.core import metrics
from api_service.dmarc import parsing, repository
from api_service.domains import health_service
from api_service.domains import service as domains_service
from api_service.domains.dns import DnsLookup, lookup_for
from api_service.errors import InvalidEmailRequest
from api_service.models import Domain
from shared.schemas.sender_health import DmarcFailure, DmarcSource, DmarcSummary, TlsReportList, TlsReportPolicy, TlsReportView

PTR_LIMIT = 200  # distinct source IPs of one report whose PTR is looked up at receipt
PTR_BUDGET_SECONDS = 5.0
PTR_CONCURRENCY = 20
SOURCES_SHOWN = 200


async def is_report_address(*, session: AsyncSession, settings: Settings, address: str) -> bool:
    """Mail to this address is a report for Postgate to read, not inbound mail for a server."""
    address = address.strip().lower()
    if address in (settings.dmarc_report_mailbox, settings.tls_report_mailbox):
        return True
    return await health_service.is_report_address(session=session, address=address)


async def receive(*, session: AsyncSession, settings: Settings, raw: bytes) -> list[str]:
    """Store every report the message carries; the ids stored ("dmarc-N", "tls-N"; "duplicate" for
    one stored before). Raises InvalidEmailRequest (the listener answers 550) when the message is
    not a report, or none of its reports is about a domain of this Postgate."""
    try:
        reports = await asyncio.to_thread(parsing.reports_in, raw)  # XML and inflating are CPU work
    except parsing.ReportError as exc:
        metrics.DMARC_REPORTS.labels("unknown", "invalid").inc()
        raise InvalidEmailRequest(f"Not a DMARC or TLS report: {exc}") from None
    dns = lookup_for(settings.dns_resolver)
    stored: list[str] = []
    for report in reports:
        if isinstance(report, parsing.AggregateReport):
            stored += await _store_aggregate(session=session, report=report, dns=dns)
        elif isinstance(report, parsing.FailureReport):
            stored += await _store_failure(session=session, report=report, dns=dns)
        else:
            stored += await _store_tls(session=session, report=report)
    if not stored:
        raise InvalidEmailRequest("The report is about no domain sending through this Postgate.")
    return stored


class _Domains:
    """Domain rows by name, each looked up once per message."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.found: dict[str, Domain | None] = {}

    async def get(self, name: str) -> Domain | None:
        name = name.lower().rstrip(".")
        if name not in self.found:
            self.found[name] = await domains_service.get_domain_by_name(session=self.session, name=name) if name else None
        return self.found[name]


async def _ptrs(ips: list[str], *, dns: DnsLookup) -> dict[str, str]:
    """The PTR name of each IP ("" when it has none); IPs left out when the time budget ran out."""
    gate = asyncio.Semaphore(PTR_CONCURRENCY)

    async def one(ip: str) -> str:
        async with gate:
            names = await dns.ptr(ip)
        return names[0] if names else ""

    tasks = {ip: asyncio.ensure_future(one(ip)) for ip in ips[:PTR_LIMIT]}
    if not tasks:
        return {}
    done, pending = await asyncio.wait(tasks.values(), timeout=PTR_BUDGET_SECONDS)
    for task in pending:
        task.cancel()
    return {ip: task.result()[:255] for ip, task in tasks.items() if task in done and task.exception() is None}


async def _store_aggregate(*, session: AsyncSession, report: parsing.AggregateReport, dns: DnsLookup) -> list[str]:
    domains = _Domains(session)
    by_domain: dict[int, tuple[Domain, list[parsing.AggregateRecord]]] = {}
    for record in report.records:
        domain = await domains.get(record.header_from) or await domains.get(report.domain)
        if domain is not None:
            by_domain.setdefault(domain.id, (domain, []))[1].append(record)
    if not report.records and (domain := await domains.get(report.domain)) is not None:
        by_domain[domain.id] = (domain, [])
    if not by_domain:
        metrics.DMARC_REPORTS.labels("aggregate", "unknown_domain").inc()
        return []
    ptrs = await _ptrs(sorted({r.source_ip for _, records in by_domain.values() for r in records}), dns=dns)
    stored = []
    for domain, records in by_domain.values():
        report_id = await repository.add_report(
            session=session,
            values={
                "domain_id": domain.id,
                "kind": "aggregate",
                "reporter": report.org_name,
                "reporter_email": report.email[:320],
                "report_id": report.report_id,
                "begin_at": report.begin,
                "end_at": report.end,
                "policy": report.policy,
                "message_count": sum(r.count for r in records),
            },
        )
        if report_id is None:
            metrics.DMARC_REPORTS.labels("aggregate", "duplicate").inc()
            stored.append("duplicate")
            continue
        await repository.add_rows(
            session=session,
            rows=[
                {
                    "report_id": report_id,
                    "domain_id": domain.id,
                    "begin_at": report.begin,
                    "source_ip": r.source_ip,
                    "ptr": ptrs.get(r.source_ip),
                    "count": r.count,
                    "disposition": r.disposition,
                    "dkim_aligned": r.dkim_aligned,
                    "spf_aligned": r.spf_aligned,
                    "header_from": r.header_from,
                    "envelope_from": r.envelope_from,
                    "auth_results": {
                        "dkim": [{"domain": a.domain, "selector": a.selector, "result": a.result} for a in r.dkim],
                        "spf": [{"domain": a.domain, "scope": a.scope, "result": a.result} for a in r.spf],
                    },
                    "failure_detail": "",
                }
                for r in records
            ],
        )
        metrics.DMARC_REPORTS.labels("aggregate", "stored").inc()
        stored.append(f"dmarc-{report_id}")
    return stored


async def _store_failure(*, session: AsyncSession, report: parsing.FailureReport, dns: DnsLookup) -> list[str]:
    domain = await _Domains(session).get(report.domain)
    if domain is None:
        metrics.DMARC_REPORTS.labels("failure", "unknown_domain").inc()
        return []
    report_id = await repository.add_report(
        session=session,
        values={
            "domain_id": domain.id,
            "kind": "failure",
            "reporter": report.reporter,
            "report_id": report.report_id,
            "begin_at": report.arrived,
            "end_at": report.arrived,
            "policy": {},
            "message_count": 1,
        },
    )
    if report_id is None:
        metrics.DMARC_REPORTS.labels("failure", "duplicate").inc()
        return ["duplicate"]
    ptrs = await _ptrs([report.source_ip] if report.source_ip else [], dns=dns)
    detail = "; ".join(
        part
        for part in (
            f"Auth-Failure: {report.auth_failure}" if report.auth_failure else "",
            f"Subject: {report.subject}" if report.subject else "",
        )
        if part
    )
    await repository.add_rows(
        session=session,
        rows=[
            {
                "report_id": report_id,
                "domain_id": domain.id,
                "begin_at": report.arrived,
                "source_ip": report.source_ip,
                "ptr": ptrs.get(report.source_ip),
                "count": 1,
                "disposition": "none",
                "dkim_aligned": False,
                "spf_aligned": False,
                "header_from": report.header_from[:255],
                "envelope_from": report.envelope_from[:255],
                "auth_results": {"dkim_domain": report.dkim_domain},
                "failure_detail": detail,
            }
        ],
    )
    metrics.DMARC_REPORTS.labels("failure", "stored").inc()
    return [f"dmarc-{report_id}"]


async def _store_tls(*, session: AsyncSession, report: parsing.TlsReport) -> list[str]:
    domains = _Domains(session)
    by_domain: dict[int, tuple[Domain, list[parsing.TlsPolicy]]] = {}
    for policy in report.policies:
        domain = await domains.get(policy.policy_domain)
        if domain is not None:
            by_domain.setdefault(domain.id, (domain, []))[1].append(policy)
    if not by_domain:
        metrics.DMARC_REPORTS.labels("tls", "unknown_domain").inc()
        return []
    stored = []
    for domain, policies in by_domain.values():
        report_id = await repository.add_tls_report(
            session=session,
            values={
                "domain_id": domain.id,
                "reporter": report.org_name,
                "report_id": report.report_id,
                "begin_at": report.begin,
                "end_at": report.end,
                "success_count": sum(p.successes for p in policies),
                "failure_count": sum(p.failures for p in policies),
                "policies": [
                    {
                        "PolicyType": p.policy_type,
                        "PolicyDomain": p.policy_domain,
                        "Successes": p.successes,
                        "Failures": p.failures,
                        "FailureDetails": [
                            {
                                "ResultType": f.result_type,
                                "SendingMtaIP": f.sending_mta_ip,
                                "ReceivingMxHostname": f.receiving_mx_hostname,
                                "FailedSessionCount": f.failed_session_count,
                                "AdditionalInformation": f.additional_information,
                            }
                            for f in p.failure_details
                        ],
                    }
                    for p in policies
                ],
            },
        )
        outcome = "stored" if report_id is not None else "duplicate"
        metrics.DMARC_REPORTS.labels("tls", outcome).inc()
        stored.append(f"tls-{report_id}" if report_id is not None else "duplicate")
    return stored


# --- what is shown ---------------------------------------------------------------------------------------


def our_networks(*, source_ips: list[str], spf_text_value: str) -> list[IPv4Network | IPv6Network]:
    """Where Postgate's mail leaves from: SOURCE_IPS, and the ip4:/ip6: networks of SPF_TEXT_VALUE
    (the record the operator asks domains to publish names them when mail goes through a relay)."""
    networks = [ip_network(ip) for ip in source_ips]
    for term in spf_text_value.split()[1:]:
        name, _, value = term.lstrip("+").partition(":")
        if name.lower() in ("ip4", "ip6"):
            with contextlib.suppress(ValueError):
                networks.append(ip_network(value, strict=False))
    return networks


def classify(*, ip: str, ours: list[IPv4Network | IPv6Network], dmarc_pass: int, spf_aligned: int) -> str:
    """postgate, forwarded, authorized or unauthenticated (see DmarcSource.Classification)."""
    with contextlib.suppress(ValueError):
        address = ip_address(ip)
        if any(address.version == n.version and address in n for n in ours):
            return "postgate"
    if dmarc_pass == 0:
        return "unauthenticated"
    return "authorized" if spf_aligned else "forwarded"


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


async def summary(*, session: AsyncSession, domain_id: int, days: int, ours: list[IPv4Network | IPv6Network]) -> DmarcSummary:
    """The domain's aggregate reports of the last `days` days, per source, and its latest failure reports."""
    domain = await domains_service.get_domain_or_raise(session=session, domain_id=domain_id)
    since = datetime.now(UTC) - timedelta(days=days)
    figures = await repository.source_figures(session=session, domain_id=domain.id, since=since, limit=SOURCES_SHOWN)
    sources = [
        DmarcSource(
            IP=f.ip,
            PTR=f.ptr,
            Messages=f.messages,
            DMARCPass=f.dmarc_pass,
            SPFAligned=f.spf_aligned,
            DKIMAligned=f.dkim_aligned,
            Classification=classify(ip=f.ip, ours=ours, dmarc_pass=f.dmarc_pass, spf_aligned=f.spf_aligned),
            Disposition=f.dispositions,
            Reporters=f.reporters,
        )
        for f in figures
    ]
    total = sum(s.Messages for s in sources)
    failures = await repository.failure_rows(session=session, domain_id=domain.id, since=since, limit=50)
    return DmarcSummary(
        ID=domain.id,
        Name=domain.name,
        Days=days,
        Reports=await repository.report_count(session=session, domain_id=domain.id, since=since),
        Messages=total,
        DMARCPassRate=_rate(sum(s.DMARCPass for s in sources), total),
        SPFAlignedRate=_rate(sum(s.SPFAligned for s in sources), total),
        DKIMAlignedRate=_rate(sum(s.DKIMAligned for s in sources), total),
        NotPostgateMessages=sum(s.Messages for s in sources if s.Classification != "postgate"),
        Sources=sources,
        FailureReports=[
            DmarcFailure(
                ReceivedAt=report.created_at,
                Reporter=report.reporter,
                SourceIP=row.source_ip,
                HeaderFrom=row.header_from,
                EnvelopeFrom=row.envelope_from,
                Detail=row.failure_detail,
            )
            for report, row in failures
        ],
    )


async def tls_summary(*, session: AsyncSession, domain_id: int, days: int) -> TlsReportList:
    domain = await domains_service.get_domain_or_raise(session=session, domain_id=domain_id)
    since = datetime.now(UTC) - timedelta(days=days)
    reports = await repository.tls_reports(session=session, domain_id=domain.id, since=since, limit=200)
    return TlsReportList(
        ID=domain.id,
        Name=domain.name,
        Days=days,
        Successes=sum(r.success_count for r in reports),
        Failures=sum(r.failure_count for r in reports),
        Reports=[
            TlsReportView(
                Reporter=r.reporter,
                ReportID=r.report_id,
                Begin=r.begin_at,
                End=r.end_at,
                Successes=r.success_count,
                Failures=r.failure_count,
                Policies=[TlsReportPolicy.model_validate(p) for p in r.policies],
            )
            for r in reports
        ],
    )


async def purge_expired(*, session: AsyncSession, days: int, limit: int) -> int:
    """Delete one batch of reports received more than `days` days ago."""
    return await repository.purge_expired(session=session, before=datetime.now(UTC) - timedelta(days=days), limit=limit)


async def fill_ptrs(*, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup, limit: int = PTR_LIMIT) -> int:
    """Look up the PTR of source IPs stored without one, outside any transaction; returns how many."""
    async with sessionmaker() as session:
        ips = await repository.ips_without_ptr(session=session, limit=limit)
    if not ips:
        return 0
    found = await _ptrs(ips, dns=dns)
    async with sessionmaker() as session, session.begin():
        for ip, ptr in found.items():
            await repository.set_ptr(session=session, ip=ip, ptr=ptr)
    return len(found)
