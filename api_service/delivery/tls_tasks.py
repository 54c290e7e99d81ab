"""The worker's TLS work: the MTA-STS policy cache's table, and the TLS-RPT step (store the
sessions counted, then send each finished day's reports)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dns.exception
import dns.name
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.config import Settings
from api_service.delivery import tls_repository
from api_service.delivery.tls_repository import SessionCount
from api_service.delivery.tlspolicy import Mode, StsPolicy, TlsPolicy
from api_service.delivery.tlsrpt import Counted, SessionCounter, build_report, mailto_address, parse_rua, policy_key, report_mail
from api_service.delivery.transport import Transport
from api_service.domains import dkim
from api_service.domains import service as domains
from api_service.mail.addresses import domain_of
from api_service.models import TlsReportStatus

log = logging.getLogger("postgate.delivery.tlsrpt")
REPORTS_PER_STEP = 20
SESSION_DAYS = 30  # counts older than this are deleted (their reports were sent long ago)


@dataclass
class PolicyStore:
    """MTA-STS policies in `mta_sts_policies`, so a restart does not forget an enforce policy."""

    sessionmaker: async_sessionmaker[AsyncSession]

    async def load(self, domain: str) -> StsPolicy | None:
        try:
            async with self.sessionmaker() as session:
                row = await tls_repository.get_policy(session=session, domain=domain)
        except Exception as exc:  # the database is away: DNS and the policy host still answer
            log.warning("reading the MTA-STS policy of %s failed: %s: %s", domain, type(exc).__name__, exc)
            return None
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return StsPolicy(
            id=row.policy_id,
            mode=Mode(row.mode),
            mx=tuple(row.mx),
            max_age=row.max_age,
            text=row.policy_text,
            expires_at=row.expires_at.timestamp(),
        )

    async def save(self, domain: str, policy: StsPolicy) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                await tls_repository.save_policy(
                    session=session,
                    values={
                        "domain": domain,
                        "policy_id": policy.id,
                        "mode": policy.mode.value,
                        "mx": list(policy.mx),
                        "max_age": policy.max_age,
                        "policy_text": policy.text,
                        "fetched_at": datetime.now(UTC),
                        "expires_at": datetime.fromtimestamp(policy.expires_at, UTC),
                    },
                )
        except Exception as exc:  # the memory cache still holds it; only a restart would forget it
            log.warning("storing the MTA-STS policy of %s failed: %s: %s", domain, type(exc).__name__, exc)


async def store_sessions(*, sessionmaker: async_sessionmaker[AsyncSession], counter: SessionCounter) -> int:
    """Add the sessions counted since the last call to the table; kept in memory when that fails."""
    taken = counter.take()
    if not taken:
        return 0
    counts = [
        SessionCount(
            day=key.day,
            policy_domain=key.domain,
            policy_key=policy_key(key.policy_type, key.strings),
            policy_type=key.policy_type.value,
            policy_strings=list(key.strings),
            mx_hosts=list(key.mx),
            result_type=key.result.value if key.result is not None else "",
            receiving_mx=key.receiving_mx,
            receiving_ip=key.receiving_ip,
            sending_ip=key.sending_ip,
            sessions=n,
        )
        for key, n in taken.items()
    ]
    try:
        async with sessionmaker() as session, session.begin():
            await tls_repository.add_sessions(session=session, counts=counts)
    except Exception:
        counter.give_back(taken)
        raise
    return len(counts)


def organization(settings: Settings, helo: str) -> str:
    return settings.tls_rpt_organization or settings.helo_name or helo


async def send_due_reports(
    *, sessionmaker: async_sessionmaker[AsyncSession], transport: Transport, settings: Settings, helo: str, today: date | None = None
) -> int:
    """The TLS-RPT step: store the counts, then report each (domain, day) before `today` not yet reported.
    Returns how many reports it handled (0: nothing due)."""
    await store_sessions(sessionmaker=sessionmaker, counter=transport.tls.sessions)
    # A day is reported ten minutes after it ends: other workers store their counts every interval.
    today = today or (datetime.now(UTC) - timedelta(minutes=10)).date()
    async with sessionmaker() as session:
        due = await tls_repository.due_reports(session=session, before=today, limit=REPORTS_PER_STEP)
    for domain, day in due:
        await send_report(sessionmaker=sessionmaker, transport=transport, settings=settings, helo=helo, domain=domain, day=day)
    if not due:
        async with sessionmaker() as session, session.begin():
            await tls_repository.purge(
                session=session,
                sessions_before=today - timedelta(days=SESSION_DAYS),
                reports_before=today - timedelta(days=settings.retention_days),
            )
    return len(due)


async def send_report(
    *, sessionmaker: async_sessionmaker[AsyncSession], transport: Transport, settings: Settings, helo: str, domain: str, day: date
) -> None:
    org = organization(settings, helo)
    async with sessionmaker() as session:
        rows = await tls_repository.sessions_of(session=session, domain=domain, day=day)
    counted = [
        Counted(
            policy_key=r.policy_key,
            policy_type=r.policy_type,
            policy_strings=list(r.policy_strings),
            mx_hosts=list(r.mx_hosts),
            result_type=r.result_type,
            receiving_mx=r.receiving_mx,
            receiving_ip=r.receiving_ip,
            sending_ip=r.sending_ip,
            sessions=r.sessions,
        )
        for r in rows
    ]
    report_id = f"{day.isoformat()}.{domain}.{uuid.uuid4().hex[:16]}@{org}"
    report = build_report(domain=domain, day=day, rows=counted, organization=org, contact=settings.system_sender, report_id=report_id)
    rua = await lookup_rua(transport.tls, domain)
    successes = sum(r.sessions for r in counted if not r.result_type)
    async with sessionmaker() as session, session.begin():
        claimed = await tls_repository.claim_report(
            session=session,
            values={
                "policy_domain": domain,
                "day": day,
                "report_id": report_id,
                "rua": ",".join(rua),
                "status": TlsReportStatus.SENDING if rua else TlsReportStatus.NO_RUA,
                "detail": "" if rua else f"_smtp._tls.{domain} publishes no TLS-RPT record",
                "successful_sessions": successes,
                "failed_sessions": sum(r.sessions for r in counted) - successes,
                "report": report,
            },
        )
    if claimed is None or not rua:
        return
    outcomes: list[tuple[str, bool, str]] = []
    for uri in rua:
        ok, detail = await _deliver(
            uri, report=report, domain=domain, day=day, org=org, transport=transport, settings=settings, sessionmaker=sessionmaker
        )
        outcomes.append((uri, ok, detail))
    sent = any(ok for _, ok, _ in outcomes)
    async with sessionmaker() as session, session.begin():
        await tls_repository.finish_report(
            session=session,
            report_id=claimed,
            status=TlsReportStatus.SENT if sent else TlsReportStatus.FAILED,
            detail="; ".join(f"{uri}: {detail}" for uri, _, detail in outcomes),
            sent_at=datetime.now(UTC) if sent else None,
        )


async def lookup_rua(policy: TlsPolicy, domain: str) -> list[str]:
    try:
        answer = await policy.resolver().resolve(dns.name.from_text(f"_smtp._tls.{domain}"), "TXT", search=False)
    except dns.exception.DNSException:
        return []
    return parse_rua([b"".join(r.strings).decode("ascii", "replace") for r in answer])


async def _deliver(
    uri: str,
    *,
    report: dict[str, Any],
    domain: str,
    day: date,
    org: str,
    transport: Transport,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[bool, str]:
    """One rua: mail to a mailto: address, or POST to an https: URL (RFC 8460 §5.3, §5.4)."""
    to = mailto_address(uri) if uri.lower().startswith("mailto:") else None
    data, body = report_mail(
        report=report,
        domain=domain,
        day=day,
        organization=org,
        sender=settings.system_sender,
        to=to or "",
        message_id_domain=settings.message_id_domain or domain_of(settings.system_sender),
    )
    if uri.lower().startswith("https://"):
        try:
            response = await transport.tls.client.post(uri, content=body, headers={"Content-Type": "application/tlsrpt+gzip"})
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__} {exc}".strip()
        return response.is_success, f"HTTP {response.status_code}"
    if to is None:
        return False, "not a valid mailto: address"
    async with sessionmaker() as session:
        keys = await domains.signing_keys(session=session, domains={domain_of(settings.system_sender)})
    key = keys.get(domain_of(settings.system_sender))
    if key is not None:  # RFC 8460 §5.3: reports are DKIM-signed where the sender can
        data = dkim.sign(data, domain=key.domain, selector=key.selector, private_pem=key.private_pem)
    attempt = await transport.send(sender=settings.system_sender, domain=domain_of(to), recipients=[to], data=data)
    reply = attempt.replies.get(to)
    if reply is None:
        return False, "no reply"
    return 200 <= reply.code < 300, f"{reply.code} {reply.message}"
