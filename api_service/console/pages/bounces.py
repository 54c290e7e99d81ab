"""A server's bounces: the list with counts by type, and reactivating a recipient."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import service as bounces_service
from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import BounceView, Pager
from api_service.console.web import (
    PAGE_SIZE,
    CheckedForm,
    ServerPage,
    Signed,
    field,
    notice_of,
    page_number,
    redirect,
    safe_next,
    server_url,
)
from api_service.core.paging import EntityId
from api_service.deps import Session, TransactionalRoute
from api_service.models import Server
from api_service.streams import service as streams_service
from shared.constants import BOUNCE_TYPE_BY_NAME, BOUNCE_TYPES, DEFAULT_MESSAGE_STREAM, BounceType, StreamType

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


async def bounces_page(
    request: Request, session: AsyncSession, server: Server, identity: access.Identity, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in ("type", "email", "state", "stream")}
    bounce_type = BOUNCE_TYPE_BY_NAME.get(values["type"].lower())
    page = page_number(request)
    filters = bounces_service.BounceFilter(
        type=bounce_type.value if bounce_type else None,
        email=values["email"] or None,
        inactive={"inactive": True, "active": False}.get(values["state"]),
        message_stream=(values["stream"] or DEFAULT_MESSAGE_STREAM).lower(),
    )
    total, rows = await bounces_service.list_bounces(
        session=session, server_id=server.id, filters=filters, count=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    inactive, counts = await bounces_service.delivery_stats(session=session, server_id=server.id)
    shown = {k: v for k, v in values.items() if v}
    return render(
        request,
        "bounces.html",
        {
            "identity": identity,
            "server": server,
            "section": "bounces",
            "bounces": [BounceView.of(row) for row in rows],
            "type_names": {t.value: info.name for t, info in BOUNCE_TYPES.items()},
            "types": [t.value for t in BounceType],
            "counts": [(t.value, BOUNCE_TYPES[t].name, c) for t, c in counts],
            "inactive_count": inactive,
            "values": values,
            "streams": [
                s
                for s in await streams_service.list_streams(session=session, server_id=server.id, stream_type=None, include_archived=True)
                if s.stream_type != StreamType.INBOUND
            ],
            "pager": Pager(page=page, total=total, size=PAGE_SIZE, query=shown),
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/bounces")
async def bounces(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await bounces_page(request, session, server, identity)


@router.post("/servers/{server_id}/bounces/{bounce_id}/activate")
async def activate_bounce(
    request: Request, bounce_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    back = safe_next(field(form, "back")) if field(form, "back") else server_url(server, "bounces")

    async def activate() -> bounces_service.BounceRow:
        return await bounces_service.activate(session=session, server_id=server.id, bounce_id=bounce_id)

    async def refused(r: Refused) -> Response:
        return await bounces_page(request, session, r.server, identity, error=r.message, status=r.status)

    return await submit(
        session=session, server=server, change=activate, done=lambda _: redirect(back, notice="reactivated"), refused=refused
    )
