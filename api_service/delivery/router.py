"""Internal endpoint for the return-path listener (account token: the listener itself takes no AUTH)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import AccountAuth, Session, TransactionalRoute
from api_service.delivery.late_bounces import record_report
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH, BounceReport, BounceReportResult

router = APIRouter(route_class=TransactionalRoute, include_in_schema=False, dependencies=[AccountAuth])


@router.post(BOUNCE_REPORT_PATH, response_model=BounceReportResult)
async def bounce_report(session: Session, report: Annotated[BounceReport, Body()]) -> BounceReportResult:
    """Record the bounces or complaint in a report mailed to a return-path address."""
    return BounceReportResult(Matched=await record_report(session=session, report=report))
