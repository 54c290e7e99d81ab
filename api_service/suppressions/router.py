"""`/message-streams/{stream}/suppressions` (server token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.deps import Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.servers.deps import CurrentServer
from api_service.suppressions import service
from shared.constants import ErrorCode, SuppressionOrigin, SuppressionReason
from shared.schemas.base import format_timestamp
from shared.schemas.suppressions import Suppression, SuppressionChange, SuppressionDump, SuppressionResults

router = APIRouter(route_class=TransactionalRoute, tags=["Suppressions"])
ERRORS = error_responses(
    invalid="ErrorCodes 1404 SuppressionReason, 1405 Origin, 1409 no Suppressions, 1410 more than 50",
    not_found="ErrorCode 1226: no such message stream",
)


def _enum(value: str | None, options: type[SuppressionReason] | type[SuppressionOrigin], code: int) -> str | None:
    if not value:
        return None
    found = next((o.value for o in options if o.value.lower() == value.lower()), None)
    if found is None:
        raise PostmarkError(code, f"'{value}' is not a valid value.")
    return found


@router.get("/message-streams/{stream}/suppressions/dump", response_model=SuppressionDump, responses=ERRORS)
async def dump(
    stream: str,
    server: CurrentServer,
    session: Session,
    suppressionreason: Annotated[str | None, Query()] = None,
    origin: Annotated[str | None, Query()] = None,
    emailaddress: Annotated[str | None, Query()] = None,
    fromdate: Annotated[str | None, Query()] = None,
    todate: Annotated[str | None, Query()] = None,
) -> SuppressionDump:
    """The stream's suppressed addresses."""
    stream_id = await service.check_stream(session=session, server=server, stream=stream)
    rows = await service.dump(
        session=session,
        server_id=server.id,
        stream=stream_id,
        reason=_enum(suppressionreason, SuppressionReason, ErrorCode.SUPPRESSION_REASON_INVALID),
        origin=_enum(origin, SuppressionOrigin, ErrorCode.SUPPRESSION_ORIGIN_INVALID),
        email=emailaddress,
        from_date=parse_query_date(fromdate, error_code=ErrorCode.SUPPRESSION_QUERY_INVALID),
        to_date=parse_query_date(todate, error_code=ErrorCode.SUPPRESSION_QUERY_INVALID, end_of_day=True),
    )
    return SuppressionDump(
        Suppressions=[
            Suppression(EmailAddress=r.email, SuppressionReason=r.reason, Origin=r.origin, CreatedAt=format_timestamp(r.created_at))
            for r in rows
        ]
    )


@router.post("/message-streams/{stream}/suppressions", response_model=SuppressionResults, responses=ERRORS)
async def suppress(stream: str, server: CurrentServer, session: Session, data: Annotated[SuppressionChange, Body()]) -> SuppressionResults:
    """Suppress up to 50 addresses on the stream."""
    stream_id = await service.check_stream(session=session, server=server, stream=stream)
    return SuppressionResults(Suppressions=await service.suppress_many(session=session, server=server, stream=stream_id, data=data))


@router.post("/message-streams/{stream}/suppressions/delete", response_model=SuppressionResults, responses=ERRORS)
async def reactivate(
    stream: str, server: CurrentServer, session: Session, data: Annotated[SuppressionChange, Body()]
) -> SuppressionResults:
    """Reactivate up to 50 addresses; a spam complaint only with `"LiftSpamComplaint": true` on its item."""
    stream_id = await service.check_stream(session=session, server=server, stream=stream)
    return SuppressionResults(Suppressions=await service.lift_many(session=session, server=server, stream=stream_id, data=data))
