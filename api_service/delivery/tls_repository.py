"""The SQL of delivery's TLS tables: the MTA-STS policy cache, TLS-RPT session counts and reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import MtaStsPolicy, TlsReport, TlsReportSession, TlsReportStatus


async def get_policy(*, session: AsyncSession, domain: str) -> MtaStsPolicy | None:
    return await session.get(MtaStsPolicy, domain)


async def save_policy(*, session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(MtaStsPolicy).values(**values)
    await session.execute(statement.on_conflict_do_update(index_elements=[MtaStsPolicy.domain], set_=statement.excluded))


@dataclass(frozen=True, slots=True)
class SessionCount:
    day: date
    policy_domain: str
    policy_key: str
    policy_type: str
    policy_strings: list[str]
    mx_hosts: list[str]
    result_type: str
    receiving_mx: str
    receiving_ip: str
    sending_ip: str
    sessions: int


async def add_sessions(*, session: AsyncSession, counts: Sequence[SessionCount]) -> None:
    """Add to the day's counts (a row per day, policy, result, MX and address)."""
    if not counts:
        return
    statement = insert(TlsReportSession).values(
        [
            {
                "day": c.day,
                "policy_domain": c.policy_domain,
                "policy_key": c.policy_key,
                "policy_type": c.policy_type,
                "policy_strings": c.policy_strings,
                "mx_hosts": c.mx_hosts,
                "result_type": c.result_type,
                "receiving_mx": c.receiving_mx,
                "receiving_ip": c.receiving_ip,
                "sending_ip": c.sending_ip,
                "sessions": c.sessions,
            }
            for c in counts
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            constraint="uq_tls_report_sessions_key", set_={"sessions": TlsReportSession.sessions + statement.excluded.sessions}
        )
    )


async def due_reports(*, session: AsyncSession, before: date, limit: int) -> list[tuple[str, date]]:
    """(domain, day) pairs of days before `before` with counted sessions and no report yet, oldest first."""
    reported = exists().where(and_(TlsReport.policy_domain == TlsReportSession.policy_domain, TlsReport.day == TlsReportSession.day))
    rows = await session.execute(
        select(TlsReportSession.policy_domain, TlsReportSession.day)
        .where(TlsReportSession.day < before, ~reported)
        .group_by(TlsReportSession.policy_domain, TlsReportSession.day)
        .order_by(TlsReportSession.day, TlsReportSession.policy_domain)
        .limit(limit)
    )
    return [(domain, day) for domain, day in rows]


async def sessions_of(*, session: AsyncSession, domain: str, day: date) -> list[TlsReportSession]:
    rows = await session.execute(
        select(TlsReportSession)
        .where(TlsReportSession.policy_domain == domain, TlsReportSession.day == day)
        .order_by(TlsReportSession.policy_key, TlsReportSession.result_type, TlsReportSession.receiving_mx, TlsReportSession.receiving_ip)
    )
    return list(rows.scalars())


async def claim_report(*, session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert the day's report row (its id), or None when another worker already has it."""
    statement = insert(TlsReport).values(**values).on_conflict_do_nothing().returning(TlsReport.id)
    return (await session.execute(statement)).scalar_one_or_none()


async def finish_report(*, session: AsyncSession, report_id: int, status: TlsReportStatus, detail: str, sent_at: datetime | None) -> None:
    await session.execute(update(TlsReport).where(TlsReport.id == report_id).values(status=status, detail=detail, sent_at=sent_at))


async def list_reports(*, session: AsyncSession, count: int, offset: int, domain: str | None) -> tuple[int, list[TlsReport]]:
    where = [TlsReport.policy_domain == domain] if domain else []
    total = (await session.execute(select(func.count()).select_from(TlsReport).where(*where))).scalar_one()
    rows = await session.execute(
        select(TlsReport).where(*where).order_by(TlsReport.day.desc(), TlsReport.policy_domain).limit(count).offset(offset)
    )
    return int(total), list(rows.scalars())


async def get_report(*, session: AsyncSession, report_id: int) -> TlsReport | None:
    return await session.get(TlsReport, report_id)


async def pending_days(*, session: AsyncSession, since: date) -> list[tuple[str, date, str, int]]:
    """Counted sessions not yet reported, by domain, day and result ('' for successes)."""
    reported = exists().where(and_(TlsReport.policy_domain == TlsReportSession.policy_domain, TlsReport.day == TlsReportSession.day))
    rows = await session.execute(
        select(TlsReportSession.policy_domain, TlsReportSession.day, TlsReportSession.result_type, func.sum(TlsReportSession.sessions))
        .where(TlsReportSession.day >= since, ~reported)
        .group_by(TlsReportSession.policy_domain, TlsReportSession.day, TlsReportSession.result_type)
        .order_by(TlsReportSession.day.desc(), TlsReportSession.policy_domain, TlsReportSession.result_type)
    )
    return [(d, day, r, int(n)) for d, day, r, n in rows]


async def purge(*, session: AsyncSession, sessions_before: date, reports_before: date) -> None:
    await session.execute(delete(TlsReportSession).where(TlsReportSession.day < sessions_before))
    await session.execute(delete(TlsReport).where(TlsReport.day < reports_before))
