"""The account's servers: the list, a new server (its token shown once), colour, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, ServerPage, Signed, field, notice_of, redirect, server_url
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.servers import service as servers_service
from api_service.servers.views import to_wire
from shared.constants import SERVER_COLORS
from shared.schemas.servers import ServerCreate, ServerEdit

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


async def servers_page(
    request: Request,
    session: AsyncSession,
    identity: access.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    total, servers = await servers_service.list_servers(session=session, count=500, offset=0, name=request.query_params.get("name") or None)
    if not identity.sees_every_server:
        servers = [s for s in servers if identity.can_see_server(s.id)]
        total = len(servers)
    hints = await servers_service.token_hints(session=session, server_ids=[s.id for s in servers])
    return render(
        request,
        "servers.html",
        {
            "identity": identity,
            "section": "servers",
            "servers": servers,
            "total": total,
            "hints": hints,
            "colors": SERVER_COLORS,
            "error": error,
            "notice": notice_of(request),
            "values": values or {"name": "", "color": "purple", "delivery_type": "Live"},
        },
        status=status,
    )


@router.get("/servers")
async def servers(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await servers_page(request, session, identity)


@router.post("/servers")
async def create_server(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    values = {"name": field(form, "name"), "color": field(form, "color", "purple"), "delivery_type": field(form, "delivery_type", "Live")}
    data = ServerCreate(Name=values["name"], Color=values["color"], DeliveryType=values["delivery_type"])

    async def create() -> servers_service.CreatedServer:
        return await servers_service.create_server(session=session, data=data, url_guard=settings.webhook_url_guard())

    def created(result: servers_service.CreatedServer) -> Response:
        wire = to_wire(result.server, tokens=[result.token], settings=settings)
        return render(
            request,
            "server_created.html",
            {"identity": identity, "server": result.server, "section": "servers", "token": result.token, "smtp": wire.SmtpConnection},
            status=201,
        )

    async def refused(r: Refused) -> Response:
        return await servers_page(request, session, identity, error=r.message, status=422, values=values)

    return await submit(session=session, change=create, done=created, refused=refused)


@router.post("/servers/{server_id}/color")
async def change_color(server: ServerPage, session: Session, settings: AppSettings, form: CheckedForm) -> Response:
    await servers_service.edit_server(
        session=session, server=server, data=ServerEdit(Color=field(form, "color")), url_guard=settings.webhook_url_guard()
    )
    return redirect(f"{PREFIX}/servers", notice="colour")


@router.get("/servers/{server_id}")
async def server_home(server: ServerPage) -> RedirectResponse:
    return redirect(server_url(server, "activity"))


@router.get("/servers/{server_id}/delete")
async def confirm_delete_server(request: Request, server: ServerPage, identity: Signed) -> HTMLResponse:
    return render(request, "server_delete.html", {"identity": identity, "server": server, "section": "settings"})


@router.post("/servers/{server_id}/delete")
async def delete_server(server: ServerPage, session: Session, form: CheckedForm) -> Response:
    await servers_service.delete_server(session=session, server_id=server.id)
    return redirect(f"{PREFIX}/servers", notice="server-deleted")
