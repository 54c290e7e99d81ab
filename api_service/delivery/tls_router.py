"""`/delivery/tls-reports` (account token, beyond Postmark): the TLS-RPT reports Postgate sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.delivery import tls_service
from api_service.delivery.tls_schemas import TlsReportDetails, TlsReportList, TlsReportSummary
from api_service.deps import Session, TransactionalRoute
from api_service.models import TlsReport
from api_service.servers.deps import AccountAuth

router = APIRouter(route_class=TransactionalRoute, tags=["Delivery"], dependencies=[AccountAuth])
ERRORS = error_responses(invalid="ErrorCode 403: a bad count or offset", not_found="ErrorCode 1471: no such report", account=True)


def summary(report: TlsReport) -> TlsReportSummary:
    return TlsReportSummary(
        ID=report.id,
        Domain=report.policy_domain,
        Date=report.day,
        ReportID=report.report_id,
        Status=report.status.value,
        Rua=[u for u in report.rua.split(",") if u],
        Detail=report.detail,
        SuccessfulSessions=report.successful_sessions,
        FailedSessions=report.failed_sessions,
        SentAt=report.sent_at,
    )


@router.get("/delivery/tls-reports", response_model=TlsReportList, responses=ERRORS)
async def list_tls_reports(
    session: Session, paging: Paging, domain: Annotated[str | None, Query(max_length=253, description="Only this recipient domain")] = None
) -> TlsReportList:
    """List the daily TLS-RPT reports (RFC 8460) sent to recipient domains, newest first."""
    total, rows = await tls_service.list_reports(session=session, count=paging.count, offset=paging.offset, domain=domain)
    return TlsReportList(TotalCount=total, TlsReports=[summary(r) for r in rows])


@router.get("/delivery/tls-reports/{report_id}", response_model=TlsReportDetails, responses=ERRORS)
async def get_tls_report(report_id: EntityId, session: Session) -> TlsReportDetails:
    """One TLS-RPT report with its JSON."""
    report = await tls_service.get_report_or_raise(session=session, report_id=report_id)
    return TlsReportDetails(**summary(report).model_dump(), Report=report.report)
