"""Sender health of domains and source IPs: checked on demand (`PUT /domains/{id}/verifyDmarc`,
the console) and by the worker every SENDER_HEALTH_INTERVAL_SECONDS; the last verdicts are stored,
shown by `GET /domains/{id}/health`, and exported as the `postgate_sender_health` gauge."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.core import metrics
from api_service.domains import health, health_repository
from api_service.domains.dns import DnsLookup
from api_service.domains.service import dkim_host, dkim_value, get_domain_or_raise
from api_service.models import Domain
from shared.constants import HealthStatus

BATCH = 10
LEVEL = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}


def health_config(settings: Settings, *, helo: str) -> health.HealthConfig:
    return health.HealthConfig(
        source_ips=settings.source_ip_list,
        spf_text_value=settings.spf_text_value,
        return_path_domain=settings.return_path_domain.lower().rstrip("."),
        dmarc_report_address=settings.dmarc_report_mailbox,
        helo_name=helo,
        dnsbl_zones=settings.dnsbl_zone_list,
        relay=settings.outbound_relay,
    )


@dataclass(frozen=True, slots=True)
class IpView:
    ip: str
    checked_at: datetime | None
    checks: list[health.Check]

    @property
    def status(self) -> HealthStatus:
        return health.worst([c.status for c in self.checks])


@dataclass(frozen=True, slots=True)
class HealthView:
    """A domain's stored verdicts and those of the source IPs."""

    domain: Domain
    checked_at: datetime | None
    checks: list[health.Check]
    ips: list[IpView]

    @property
    def status(self) -> HealthStatus:
        return health.worst([c.status for c in self.checks] + [ip.status for ip in self.ips if ip.checks])


def _stored(checks: list[dict[str, Any]]) -> list[health.Check]:
    return [health.Check.from_json(c) for c in checks]


def _facts(domain: Domain) -> health.DomainFacts:
    return health.DomainFacts(
        name=domain.name,
        dkim_host=dkim_host(domain.dkim_selector, domain.name),
        dkim_value=dkim_value(domain.dkim_public_key),
        dkim_public_key=domain.dkim_public_key,
        return_path_domain=domain.return_path_domain,
        return_path_verified=domain.return_path_verified,
    )


def _export(subject: str, checks: list[health.Check]) -> None:
    for check in checks:
        metrics.SENDER_HEALTH.labels(subject, check.name).set(LEVEL[check.status])


async def _rates(*, session: AsyncSession, domain: str, now: datetime) -> health.Rates:
    sent, bounced, complained = await health_repository.sending_figures(
        session=session, domain=domain, since=now - timedelta(days=health.RATE_DAYS)
    )
    return health.Rates(sent=sent, bounced=bounced, complained=complained)


async def _ip_checks(*, config: health.HealthConfig, dns: DnsLookup) -> dict[str, list[health.Check]]:
    if not config.source_ips:
        return {}
    results = await asyncio.gather(*(health.check_ip(ip=ip, config=config, dns=dns) for ip in config.source_ips))
    return dict(zip(config.source_ips, results, strict=True))


async def check_domain(*, session: AsyncSession, domain_id: int, dns: DnsLookup, config: health.HealthConfig) -> HealthView:
    """Run every check of the domain and of the source IPs now, store and return the verdicts."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    now = datetime.now(UTC)
    rates = await _rates(session=session, domain=domain.name, now=now)
    report, ips = await asyncio.gather(
        health.check_domain(facts=_facts(domain), config=config, rates=rates, dns=dns), _ip_checks(config=config, dns=dns)
    )
    await health_repository.save_domain_health(
        session=session,
        domain_id=domain.id,
        checked_at=now,
        checks=[c.to_json() for c in report.checks],
        report_addresses=report.report_addresses,
    )
    for ip, ip_checks in ips.items():
        await health_repository.save_ip_health(session=session, ip=ip, checked_at=now, checks=[c.to_json() for c in ip_checks])
        _export(ip, ip_checks)
    _export(domain.name, report.checks)
    return HealthView(domain=domain, checked_at=now, checks=report.checks, ips=await _ip_views(session=session, config=config))


async def _ip_views(*, session: AsyncSession, config: health.HealthConfig) -> list[IpView]:
    if not config.source_ips:
        return [IpView(ip="", checked_at=None, checks=health.no_source_ips_checks(config))]
    stored = await health_repository.ip_health(session=session, ips=config.source_ips)
    return [
        IpView(ip=ip, checked_at=row.checked_at if row else None, checks=_stored(row.checks) if row else [])
        for ip in config.source_ips
        for row in [stored.get(ip)]
    ]


async def get_health(*, session: AsyncSession, domain_id: int, dns: DnsLookup, config: health.HealthConfig) -> HealthView:
    """The stored verdicts; a domain never checked yet is checked now."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    stored = await health_repository.get_domain_health(session=session, domain_id=domain.id)
    if stored is None or not stored.checks:
        return await check_domain(session=session, domain_id=domain_id, dns=dns, config=config)
    return HealthView(
        domain=domain, checked_at=stored.checked_at, checks=_stored(stored.checks), ips=await _ip_views(session=session, config=config)
    )


async def overview(*, session: AsyncSession, config: health.HealthConfig, limit: int = 500) -> tuple[list[HealthView], list[IpView]]:
    """The stored verdicts of every domain (none yet: CheckedAt None), and of the source IPs; no DNS."""
    rows = await health_repository.all_domain_health(session=session, limit=limit)
    views = [
        HealthView(domain=d, checked_at=h.checked_at if h and h.checks else None, checks=_stored(h.checks) if h else [], ips=[])
        for d, h in rows
    ]
    return views, await _ip_views(session=session, config=config)


async def check_due(
    *, sessionmaker: async_sessionmaker[AsyncSession], dns: DnsLookup, config: health.HealthConfig, interval_seconds: float
) -> int:
    """The worker's round: claim the domains and IPs due, ask DNS outside any transaction, store the
    verdicts; returns how many domains and IPs were checked."""
    now = datetime.now(UTC)
    checked_before = now - timedelta(seconds=interval_seconds)
    async with sessionmaker() as session, session.begin():
        domains = await health_repository.claim_due_domains(session=session, checked_before=checked_before, now=now, limit=BATCH)
        facts = [(d.id, _facts(d)) for d in domains]
        ips = await health_repository.claim_due_ips(session=session, ips=config.source_ips, checked_before=checked_before, now=now)
        rates = [await _rates(session=session, domain=f.name, now=now) for _, f in facts]
    reports = await asyncio.gather(
        *(health.check_domain(facts=f, config=config, rates=r, dns=dns) for (_, f), r in zip(facts, rates, strict=True))
    )
    ip_results = await asyncio.gather(*(health.check_ip(ip=ip, config=config, dns=dns) for ip in ips))
    async with sessionmaker() as session, session.begin():
        for (domain_id, f), report in zip(facts, reports, strict=True):
            await health_repository.update_domain_health(
                session=session,
                domain_id=domain_id,
                checked_at=now,
                checks=[c.to_json() for c in report.checks],
                report_addresses=report.report_addresses,
            )
            _export(f.name, report.checks)
        for ip, checks in zip(ips, ip_results, strict=True):
            await health_repository.save_ip_health(session=session, ip=ip, checked_at=now, checks=[c.to_json() for c in checks])
            _export(ip, checks)
    return len(facts) + len(ips)


async def is_report_address(*, session: AsyncSession, address: str) -> bool:
    """Whether a domain's DMARC or TLS-RPT record (as last checked) names this report address."""
    return bool(await health_repository.domains_for_report_address(session=session, address=address))
