"""A server's templates: the list (Standard templates and Layouts) and pushing them to another server.

The editor of one template is `template_editor.py`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import PushPlan
from api_service.console.web import CheckedForm, ServerPage, Signed, field, notice_of, redirect, server_url
from api_service.deps import Session, TransactionalRoute
from api_service.models import Server
from api_service.servers import service as servers_service
from api_service.templates import service as templates_service
from shared.constants import MAX_TEMPLATES_PER_SERVER
from shared.schemas.templates import TemplatePushRequest

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

TYPE_FILTERS = (("all", "All"), ("standard", "Standard"), ("layout", "Layouts"))
NOTICES = {
    "template-added": "The template is saved; send with it through /email/withTemplate.",
    "layout-added": "The layout is saved; Standard templates can use it now.",
    "template-deleted": "The template is deleted.",
    "templates-pushed": "The templates are copied to this server.",
}


def templates_url(server: Server, page: str = "") -> str:
    return server_url(server, "templates" + (f"/{page}" if page else ""))


def page_notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice", "")) or notice_of(request)


async def templates_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    plan: PushPlan | None = None,
) -> HTMLResponse:
    shown = request.query_params.get("type", "all").lower()
    shown = shown if shown in dict(TYPE_FILTERS) else "all"
    _, found = await templates_service.list_templates(
        session=session,
        server_id=server.id,
        count=MAX_TEMPLATES_PER_SERVER,
        offset=0,
        template_type=None if shown == "all" else shown,
        layout_template=None,
    )
    _, servers = await servers_service.list_servers(session=session, count=500, offset=0, name=None)
    return render(
        request,
        "templates.html",
        {
            "identity": identity,
            "server": server,
            "section": "templates",
            "templates": found,
            "filters": TYPE_FILTERS,
            "shown": shown,
            "destinations": [s for s in servers if s.id != server.id],
            "plan": plan,
            "error": error,
            "notice": page_notice(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/templates")
async def templates(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await templates_page(request, session, server, identity)


@router.post("/servers/{server_id}/templates/push")
async def push_templates(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    """A dry run first (what would be created or changed); `apply` performs it."""
    destination_id = int(field(form, "destination")) if field(form, "destination").isdigit() else 0
    apply = field(form, "apply") == "1"
    try:
        request_data = TemplatePushRequest(SourceServerID=server.id, DestinationServerID=destination_id, PerformChanges=apply)
    except ValidationError:
        return await templates_page(request, session, server, identity, error="Choose the server to copy the templates to.", status=422)

    async def push() -> PushPlan:
        result = await templates_service.push_templates(session=session, data=request_data)
        destination = await servers_service.get_server_or_raise(session=session, server_id=destination_id)
        return PushPlan(destination=destination, result=result)

    async def done(plan: PushPlan) -> Response:
        if apply:
            return redirect(templates_url(plan.destination), notice="templates-pushed")
        return await templates_page(request, session, server, identity, plan=plan)

    async def refused(r: Refused) -> Response:
        return await templates_page(request, session, r.server, identity, error=r.message, status=422)

    return await submit(session=session, server=server, change=push, done=done, refused=refused)
