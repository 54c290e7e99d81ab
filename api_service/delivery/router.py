"""Internal endpoint for the return-path listener (account token: the listener itself takes no AUTH)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import AccountAuth, Session, TransactionalRoute
from api_service.delivery.late_bounces import record_report
from shared.schemas.inbound import INBOUND_BOUNCE_PATH, InboundBounce, InboundBounceResult

router = APIRouter(route_class=TransactionalRoute, include_in_schema=False, dependencies=[AccountAuth])


@router.post(INBOUND_BOUNCE_PATH, response_model=InboundBounceResult)
async def inbound_bounce(session: Session, report: Annotated[InboundBounce, Body()]) -> InboundBounceResult:
    """Record the bounces or complaint in a report mailed to a return-path address."""
    return InboundBounceResult(Matched=await record_report(session=session, report=report))
