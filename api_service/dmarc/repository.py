"""SQL of the reports received: storing them (a report mailed twice is stored once), the per-source
summary, and retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import DmarcReport, DmarcReportRow, ReceivedTlsReport


async def add_report(*, session: AsyncSession, values: dict[str, Any]) -> int | None:
    """The new report's id; None when this reporter's report of this id is already stored."""
    stmt = insert(DmarcReport).values(values).on_conflict_do_nothing().returning(DmarcReport.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_rows(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 1000):  # one statement per thousand rows keeps the bind count in bounds
        await session.execute(insert(DmarcReportRow).values(rows[start : start + 1000]))


async def add_tls_report(*, session: AsyncSession, values: dict[str, Any]) -> int | None:
    stmt = insert(ReceivedTlsReport).values(values).on_conflict_do_nothing().returning(ReceivedTlsReport.id)
    return (await session.execute(stmt)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class SourceFigures:
    ip: str
    ptr: str
    messages: int
    dmarc_pass: int
    spf_aligned: int
    dkim_aligned: int
    dispositions: dict[str, int]
    reporters: list[str]


async def source_figures(*, session: AsyncSession, domain_id: int, since: datetime, limit: int) -> list[SourceFigures]:
    """The aggregate rows of a domain since `since`, added up by source IP, largest first."""
    row, report = DmarcReportRow, DmarcReport
    passed = func.sum(row.count).filter(row.dkim_aligned | row.spf_aligned)
    stmt = (
        select(
            row.source_ip,
            func.max(row.ptr),
            func.sum(row.count),
            func.coalesce(passed, 0),
            func.coalesce(func.sum(row.count).filter(row.spf_aligned), 0),
            func.coalesce(func.sum(row.count).filter(row.dkim_aligned), 0),
            func.coalesce(func.sum(row.count).filter(row.disposition == "quarantine"), 0),
            func.coalesce(func.sum(row.count).filter(row.disposition == "reject"), 0),
            func.array_agg(func.distinct(report.reporter)),
        )
        .join(report, report.id == row.report_id)
        .where(row.domain_id == domain_id, row.begin_at >= since, report.kind == "aggregate")
        .group_by(row.source_ip)
        .order_by(func.sum(row.count).desc(), row.source_ip)
        .limit(limit)
    )
    found = []
    for ip, ptr, messages, dmarc_pass, spf, dkim, quarantined, rejected, reporters in (await session.execute(stmt)).all():
        total = int(messages or 0)
        found.append(
            SourceFigures(
                ip=ip,
                ptr=ptr or "",
                messages=total,
                dmarc_pass=int(dmarc_pass),
                spf_aligned=int(spf),
                dkim_aligned=int(dkim),
                dispositions={"none": total - int(quarantined) - int(rejected), "quarantine": int(quarantined), "reject": int(rejected)},
                reporters=sorted(r for r in reporters if r),
            )
        )
    return found


async def report_count(*, session: AsyncSession, domain_id: int, since: datetime) -> int:
    stmt = select(func.count()).select_from(DmarcReport).where(DmarcReport.domain_id == domain_id, DmarcReport.begin_at >= since)
    return int(await session.scalar(stmt) or 0)


async def failure_rows(*, session: AsyncSession, domain_id: int, since: datetime, limit: int) -> list[tuple[DmarcReport, DmarcReportRow]]:
    stmt = (
        select(DmarcReport, DmarcReportRow)
        .join(DmarcReportRow, DmarcReportRow.report_id == DmarcReport.id)
        .where(DmarcReport.domain_id == domain_id, DmarcReport.kind == "failure", DmarcReport.created_at >= since)
        .order_by(DmarcReport.created_at.desc())
        .limit(limit)
    )
    return [(r, row) for r, row in (await session.execute(stmt)).all()]


async def tls_reports(*, session: AsyncSession, domain_id: int, since: datetime, limit: int) -> list[ReceivedTlsReport]:
    stmt = (
        select(ReceivedTlsReport)
        .where(ReceivedTlsReport.domain_id == domain_id, ReceivedTlsReport.begin_at >= since)
        .order_by(ReceivedTlsReport.begin_at.desc(), ReceivedTlsReport.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


async def purge_expired(*, session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` DMARC and TLS reports received before `before` (their rows go by cascade)."""
    deleted = 0
    for model in (DmarcReport, ReceivedTlsReport):
        ids = select(model.id).where(model.created_at < before).order_by(model.id).limit(limit).with_for_update(skip_locked=True)
        result = await session.execute(delete(model).where(model.id.in_(ids.scalar_subquery())))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


async def ips_without_ptr(*, session: AsyncSession, limit: int) -> list[str]:
    """Source IPs whose PTR was not looked up at receipt (the time budget ran out)."""
    stmt = select(DmarcReportRow.source_ip).where(DmarcReportRow.ptr.is_(None), DmarcReportRow.source_ip != "").distinct().limit(limit)
    return list((await session.execute(stmt)).scalars().all())


async def set_ptr(*, session: AsyncSession, ip: str, ptr: str) -> None:
    await session.execute(update(DmarcReportRow).where(DmarcReportRow.source_ip == ip, DmarcReportRow.ptr.is_(None)).values(ptr=ptr))
