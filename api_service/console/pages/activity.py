"""A server's outbound activity: the searchable message list and its live-refreshed rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console.rendering import PREFIX, render
from api_service.console.views import Pager, SearchQuery
from api_service.console.web import PAGE_SIZE, ServerPage, Signed, page_number, search_dates, server_url
from api_service.deps import Session, TransactionalRoute
from api_service.messages import service as messages_service
from api_service.models import Server
from api_service.streams import service as streams_service
from shared.constants import MessageStatus

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

ACTIVITY_KEYS = ("recipient", "subject", "tag", "status", "stream", "fromdate", "todate")


def activity_query(request: Request) -> SearchQuery[messages_service.MessageFilter]:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in ACTIVITY_KEYS}
    status = next((s.value for s in MessageStatus if s.value.lower() == values["status"].lower()), None)
    from_date, to_date, error = search_dates(values)
    filters = messages_service.MessageFilter(
        recipient=values["recipient"] or None,
        subject=values["subject"] or None,
        tag=values["tag"] or None,
        status=status,
        message_stream=values["stream"].lower() or None,
        from_date=from_date,
        to_date=to_date,
    )
    return SearchQuery(values=values, filters=filters, error=error)


async def activity_context(request: Request, session: AsyncSession, server: Server) -> dict[str, Any]:
    query = activity_query(request)
    page = page_number(request)
    total, messages = await messages_service.list_messages(
        session=session, server_id=server.id, filters=query.filters, count=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    shown = {k: v for k, v in query.values.items() if v}
    return {
        "server": server,
        "section": "activity",
        "messages": messages,
        "pager": Pager(page=page, total=total, size=PAGE_SIZE, query=shown),
        "values": query.values,
        "error": query.error,
        "statuses": [s.value for s in MessageStatus],
        "streams": await streams_service.list_streams(session=session, server_id=server.id, stream_type=None, include_archived=True),
        "rows_url": server_url(server, "activity/rows") + ("?" + urlencode(shown) if shown else ""),
        "live": page == 1,
    }


@router.get("/servers/{server_id}/activity")
async def activity(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    context = await activity_context(request, session, server)
    return render(request, "activity.html", {"identity": identity, **context}, status=422 if context["error"] else 200)


@router.get("/servers/{server_id}/activity/rows")
async def activity_rows(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    """The table body alone, for htmx's live refresh."""
    return render(request, "_activity_rows.html", {"identity": identity, **await activity_context(request, session, server)})
