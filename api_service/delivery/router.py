"""`/delivery/destinations` with the account token (beyond Postmark): the live shaping state."""

from __future__ import annotations

from fastapi import APIRouter

from api_service.core.errors import error_responses
from api_service.delivery import service
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.servers.deps import AccountAuth
from shared.schemas.delivery import DeliveryDestinationList, SourceIpList

router = APIRouter(route_class=TransactionalRoute, tags=["Delivery"])
ERRORS = error_responses(invalid="ErrorCode 403: a field of the wrong type", account=True)


@router.get("/delivery/destinations", response_model=DeliveryDestinationList, responses=ERRORS, dependencies=[AccountAuth])
async def list_destinations(session: Session, settings: AppSettings) -> DeliveryDestinationList:
    """Each delivery destination's limits (configured and learned), open connections, queue and state."""
    found = await service.destinations(session=session, settings=settings)
    return DeliveryDestinationList(TotalCount=len(found), Destinations=found)


@router.get("/delivery/source-ips", response_model=SourceIpList, responses=ERRORS, dependencies=[AccountAuth])
async def list_source_ips(session: Session, settings: AppSettings) -> SourceIpList:
    """The pools' source IPs: HELO name, warm-up day, and today's sends per destination against the allowance."""
    found = await service.source_ips(session=session, settings=settings)
    return SourceIpList(TotalCount=len(found), SourceIps=found)
