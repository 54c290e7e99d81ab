"""`/stats/outbound*` (server token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.deps import Session, TransactionalRoute
from api_service.models import Server
from api_service.servers.deps import CurrentServer
from api_service.stats import service
from api_service.streams import service as streams
from shared.constants import ErrorCode
from shared.schemas.stats import OutboundOverview, StatsSeries

router = APIRouter(route_class=TransactionalRoute, tags=["Stats"])
ERRORS = error_responses(invalid="ErrorCode 900: invalid date; 1226: no such message stream")

TagQuery = Annotated[str | None, Query()]
DateQuery = Annotated[str | None, Query(description="YYYY-MM-DD, inclusive, US Eastern")]
StreamQuery = Annotated[str | None, Query(description="Stream ID; all streams when absent")]
MachinesQuery = Annotated[
    bool,
    Query(
        alias="includemachines",
        description="Beyond Postmark (`includeMachines`; query names are case-insensitive): count opens and clicks by "
        "privacy proxies and scanners too",
    ),
]


async def _filter(
    *,
    session: AsyncSession,
    server: Server,
    tag: str | None,
    fromdate: str | None,
    todate: str | None,
    messagestream: str | None,
    include_machines: bool = False,
) -> service.StatsFilter:
    stream = None
    if messagestream:
        stream = (await streams.get_stream_or_raise(session=session, server_id=server.id, stream_id=messagestream)).stream_id
    return service.StatsFilter(
        server_id=server.id,
        tag=tag or None,
        message_stream=stream,
        from_date=parse_query_date(fromdate, error_code=ErrorCode.STATS_DATE_INVALID),
        to_date=parse_query_date(todate, error_code=ErrorCode.STATS_DATE_INVALID, end_of_day=True),
        include_machines=include_machines,
    )


@router.get("/stats/outbound", response_model=OutboundOverview, responses=ERRORS)
async def overview(
    server: CurrentServer,
    session: Session,
    tag: TagQuery = None,
    fromdate: DateQuery = None,
    todate: DateQuery = None,
    messagestream: StreamQuery = None,
    include_machines: MachinesQuery = False,
) -> OutboundOverview:
    """Totals of sends, bounces, spam complaints, opens and clicks (a message counts once per recipient)."""
    f = await _filter(
        session=session,
        server=server,
        tag=tag,
        fromdate=fromdate,
        todate=todate,
        messagestream=messagestream,
        include_machines=include_machines,
    )
    return await service.overview(session=session, f=f)


def _series(path: str, summary: str, compute: Callable[..., Awaitable[StatsSeries]]) -> None:
    async def endpoint(
        server: CurrentServer,
        session: Session,
        tag: TagQuery = None,
        fromdate: DateQuery = None,
        todate: DateQuery = None,
        messagestream: StreamQuery = None,
        include_machines: MachinesQuery = False,
    ) -> StatsSeries:
        f = await _filter(
            session=session,
            server=server,
            tag=tag,
            fromdate=fromdate,
            todate=todate,
            messagestream=messagestream,
            include_machines=include_machines,
        )
        return await compute(session=session, f=f)

    endpoint.__doc__ = summary
    router.add_api_route(
        f"/stats/outbound/{path}", endpoint, methods=["GET"], response_model=StatsSeries, responses=ERRORS, name=path.replace("/", "_")
    )


_series("sends", "Recipients sent to, per day.", service.sends)
_series("bounces", "Bounces per day by type (HardBounce, SoftBounce, SMTPApiError …).", service.bounces)
_series("spam", "Spam complaints per day.", service.spam)
_series("tracked", "Recipients sent to with open or link tracking, per day.", service.tracked)
_series("opens", "Opens and unique opens per day.", service.opens)
_series("opens/platforms", "Opens per day by platform (Desktop, Mobile, WebMail, Unknown).", service.open_platforms)
_series("opens/emailclients", "Opens per day by email client.", service.email_clients)
_series("opens/readtimes", "Unique opens per day by read time (Postgate records none: see README).", service.read_times)
_series("clicks", "Clicks and unique link clicks per day.", service.clicks)
_series("clicks/browserfamilies", "Clicks per day by browser family.", service.browser_families)
_series("clicks/platforms", "Clicks per day by platform.", service.click_platforms)
_series("clicks/location", "Clicks per day by where the link was (HTML or Text).", service.click_locations)
