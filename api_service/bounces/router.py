"""`/bounces` and `/deliverystats` (server token)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api_service.bounces import repository, service
from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, SearchPaging
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.domains import service as domains
from api_service.errors import PostmarkError
from api_service.servers.deps import AccountAuth, CurrentServer
from api_service.streams.service import ComplaintLine
from shared.constants import BOUNCE_TYPE_BY_NAME, BOUNCE_TYPES, DEFAULT_MESSAGE_STREAM, BounceType, ErrorCode
from shared.schemas.base import format_timestamp
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH, RETURN_PATH_DOMAINS_PATH, BounceReport, BounceReportResult, ReturnPathDomains
from shared.schemas.bounces import Bounce, BounceActivation, BounceCount, BounceDump, BounceList, DeliveryStats

router = APIRouter(route_class=TransactionalRoute, tags=["Bounces"])
ERRORS = error_responses(
    invalid="ErrorCode 1000: invalid query (type, dates, count + offset > 10000); 1003: this bounce type cannot be activated",
    not_found="ErrorCode 1001: no such bounce",
)


def to_wire(row: repository.BounceRow, *, with_content: bool = False) -> Bounce:
    b = row.bounce
    info = BOUNCE_TYPES[BounceType(b.type)]
    return Bounce(
        ID=b.id,
        Type=b.type,
        TypeCode=b.type_code,
        Name=info.name,
        Tag=b.tag,
        MessageID=str(b.message_id) if b.message_id else "",
        ServerID=b.server_id,
        MessageStream=b.message_stream,
        Description=info.description,
        Details=b.details,
        Email=b.email,
        From=b.from_email,
        BouncedAt=format_timestamp(b.bounced_at),
        DumpAvailable=row.dump_available,
        Inactive=row.inactive,
        CanActivate=b.can_activate,
        Subject=b.subject,
        Content=(b.content or "") if with_content else None,
    )


@router.get("/deliverystats", response_model=DeliveryStats, response_model_exclude_none=True, responses=ERRORS)
async def delivery_stats(server: CurrentServer, session: Session) -> DeliveryStats:
    """Inactive addresses and bounce counts by type."""
    inactive, rows = await service.delivery_stats(session=session, server_id=server.id)
    counts = [BounceCount(Name="All", Count=sum(c for _, c in rows))]
    counts += [BounceCount(Type=t.value, Name=BOUNCE_TYPES[t].name, Count=c) for t, c in rows]
    return DeliveryStats(InactiveMails=inactive, Bounces=counts)


@router.get("/bounces", response_model=BounceList, response_model_exclude_none=True, responses=ERRORS)
async def list_bounces(
    server: CurrentServer,
    session: Session,
    paging: SearchPaging,
    type: Annotated[str | None, Query(description="A bounce type name, e.g. HardBounce")] = None,
    inactive: Annotated[bool | None, Query()] = None,
    emailfilter: Annotated[str | None, Query(description="Substring of the recipient")] = None,
    tag: Annotated[str | None, Query()] = None,
    messageid: Annotated[str | None, Query()] = None,
    fromdate: Annotated[str | None, Query()] = None,
    todate: Annotated[str | None, Query()] = None,
    messagestream: Annotated[str | None, Query(description="Defaults to outbound")] = None,
) -> BounceList:
    """Search bounces, newest first."""
    bounce_type = None
    if type:
        found = BOUNCE_TYPE_BY_NAME.get(type.lower())
        if found is None:
            raise PostmarkError(ErrorCode.BOUNCE_QUERY, f"'{type}' is not a bounce type.")
        bounce_type = found.value
    message_id = None
    if messageid:
        try:
            message_id = uuid.UUID(messageid)
        except ValueError:
            raise PostmarkError(ErrorCode.BOUNCE_QUERY, f"'{messageid}' is not a MessageID.") from None
    filters = repository.BounceFilter(
        type=bounce_type,
        inactive=inactive,
        email=emailfilter,
        tag=tag,
        message_id=message_id,
        message_stream=(messagestream or DEFAULT_MESSAGE_STREAM).lower(),
        from_date=parse_query_date(fromdate, error_code=ErrorCode.BOUNCE_QUERY),
        to_date=parse_query_date(todate, error_code=ErrorCode.BOUNCE_QUERY, end_of_day=True),
    )
    total, rows = await service.list_bounces(
        session=session, server_id=server.id, filters=filters, count=paging.count, offset=paging.offset
    )
    return BounceList(TotalCount=total, Bounces=[to_wire(row) for row in rows])


@router.get("/bounces/tags", response_model=list[str], responses=ERRORS)
async def bounce_tags(server: CurrentServer, session: Session) -> list[str]:
    """Tags of messages that bounced (an older Postmark endpoint some clients still call)."""
    return await service.bounce_tags(session=session, server_id=server.id)


@router.get("/bounces/{bounce_id}", response_model=Bounce, responses=ERRORS)
async def get_bounce(bounce_id: EntityId, server: CurrentServer, session: Session) -> Bounce:
    """A single bounce, with `Content`."""
    return to_wire(await service.get_bounce_or_raise(session=session, server_id=server.id, bounce_id=bounce_id), with_content=True)


@router.get("/bounces/{bounce_id}/dump", response_model=BounceDump, responses=ERRORS)
async def bounce_dump(bounce_id: EntityId, server: CurrentServer, session: Session) -> BounceDump:
    """The raw source of the bounce (or of the refused message); empty when none is kept."""
    row = await service.get_bounce_or_raise(session=session, server_id=server.id, bounce_id=bounce_id)
    body = await service.dump_body(session=session, row=row)
    return BounceDump(Body=body.decode("utf-8", "replace") if body else "")


@router.put("/bounces/{bounce_id}/activate", response_model=BounceActivation, responses=ERRORS)
async def activate_bounce(
    bounce_id: EntityId, server: CurrentServer, session: Session, _body: Annotated[dict[str, Any] | None, Body()] = None
) -> BounceActivation:
    """Reactivate the bounced recipient, so mail to it is delivered again."""
    row = await service.activate(session=session, server_id=server.id, bounce_id=bounce_id)
    return BounceActivation(Message="OK", Bounce=to_wire(row, with_content=True))


@router.post(BOUNCE_REPORT_PATH, response_model=BounceReportResult, include_in_schema=False, dependencies=[AccountAuth])
async def bounce_report(session: Session, settings: AppSettings, report: Annotated[BounceReport, Body()]) -> BounceReportResult:
    """Record the bounces or complaint in a report mailed to a return-path address (the return-path
    listener calls this with the account token; the listener itself takes no AUTH)."""
    loops = [entry for entry in settings.feedback_loop_senders.split(",") if entry.strip()]
    line = ComplaintLine(rate=settings.complaint_pause_rate, min_sent=settings.complaint_pause_min_sent)
    matched = await service.record_report(
        session=session,
        report=report,
        feedback_loops=loops,
        keys=settings.verp_keys,
        legacy_before=settings.verp_legacy_before,
        complaint_line=line,
    )
    return BounceReportResult(Matched=matched)


@router.get(RETURN_PATH_DOMAINS_PATH, response_model=ReturnPathDomains, include_in_schema=False, dependencies=[AccountAuth])
async def return_path_domains(session: Session, settings: AppSettings) -> ReturnPathDomains:
    """The domains the return-path listener takes reports for: RETURN_PATH_DOMAIN and every verified
    ReturnPathDomain (mail from those domains goes out with its return path there)."""
    verified = await domains.verified_return_paths(session=session)
    return ReturnPathDomains(Domains=list(dict.fromkeys([settings.return_path_domain.lower(), *verified])))
