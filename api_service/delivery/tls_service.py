"""Reading the TLS-RPT reports sent (API and console)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.delivery import tls_repository
from api_service.errors import NotFound
from api_service.models import TlsReport
from shared.constants import ErrorCode


async def list_reports(*, session: AsyncSession, count: int, offset: int, domain: str | None = None) -> tuple[int, list[TlsReport]]:
    return await tls_repository.list_reports(session=session, count=count, offset=offset, domain=domain.lower() if domain else None)


async def get_report_or_raise(*, session: AsyncSession, report_id: int) -> TlsReport:
    report = await tls_repository.get_report(session=session, report_id=report_id)
    if report is None:
        raise NotFound(ErrorCode.TLS_REPORT_NOT_FOUND, "This TLS report was not found.")
    return report


@dataclass(frozen=True, slots=True)
class Pending:
    """Sessions counted for a domain and day whose report is not sent yet (today's, mostly)."""

    domain: str
    day: date
    successes: int
    failures: dict[str, int]


async def pending(*, session: AsyncSession, today: date, days: int = 7) -> list[Pending]:
    rows = await tls_repository.pending_days(session=session, since=today - timedelta(days=days))
    found: dict[tuple[str, date], Pending] = {}
    for domain, day, result, sessions in rows:
        entry = found.setdefault((domain, day), Pending(domain=domain, day=day, successes=0, failures={}))
        if result:
            entry.failures[result] = entry.failures.get(result, 0) + sessions
        else:
            found[(domain, day)] = Pending(domain=domain, day=day, successes=entry.successes + sessions, failures=entry.failures)
    return list(found.values())
