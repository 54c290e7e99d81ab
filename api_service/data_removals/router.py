"""`/data-removals` (account token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.errors import error_responses
from api_service.core.paging import EntityId
from api_service.data_removals import service
from api_service.deps import Session, TransactionalRoute
from api_service.models import DataRemoval
from api_service.servers.deps import AccountAuth
from shared.schemas.base import format_timestamp
from shared.schemas.data_removals import DataRemovalCounts, DataRemovalRequest, DataRemovalStatus

router = APIRouter(route_class=TransactionalRoute, tags=["Data removal"], dependencies=[AccountAuth])
ERRORS = error_responses(
    invalid="ErrorCode 1300: RequestedBy or RequestedFor is not a valid email address",
    not_found="ErrorCode 1301: no such data removal request",
    account=True,
)


def status(removal: DataRemoval) -> DataRemovalStatus:
    return DataRemovalStatus(
        ID=removal.id,
        Status=removal.status,
        CompletedAt=format_timestamp(removal.completed_at) if removal.completed_at else None,
        Removed=DataRemovalCounts.model_validate(removal.counts),
    )


@router.post("/data-removals", response_model=DataRemovalStatus, responses=ERRORS)
async def request_removal(session: Session, data: Annotated[DataRemovalRequest, Body()]) -> DataRemovalStatus:
    """Erase what is held about RequestedFor: the worker deletes or anonymises its messages, bounces, suppressions
    and webhook events in the background (Status Pending, then Done); RequestedBy is mailed when NotifyWhenCompleted."""
    return status(await service.request_removal(session=session, data=data))


@router.get("/data-removals/{removal_id}", response_model=DataRemovalStatus, responses=ERRORS)
async def get_removal(removal_id: EntityId, session: Session) -> DataRemovalStatus:
    """The status of a data removal request."""
    return status(await service.get_removal_or_raise(session=session, removal_id=removal_id))
