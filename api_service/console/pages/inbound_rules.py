"""A server's inbound rules: senders (addresses or domains) whose mail is blocked, not posted.

A new rule goes through the inbound service, so it does exactly what `POST /triggers/inboundrules` does.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.pages.inbound import notice
from api_service.console.rendering import PREFIX, render
from api_service.console.views import Pager
from api_service.console.web import PAGE_SIZE, CheckedForm, ServerPage, Signed, field, page_number, redirect, server_url
from api_service.core.paging import EntityId, Page
from api_service.deps import Session, TransactionalRoute
from api_service.inbound import service as inbound_service
from api_service.models import InboundRule, Server
from shared.schemas.inbound import InboundRuleCreate

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


async def rules_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    *,
    rule: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    page = page_number(request)
    total, rules = await inbound_service.list_rules(
        session=session, server_id=server.id, page=Page(count=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    )
    return render(
        request,
        "inbound_rules.html",
        {
            "identity": identity,
            "server": server,
            "section": "inbound-rules",
            "rules": rules,
            "pager": Pager(page=page, total=total, size=PAGE_SIZE, query={}),
            "rule": rule,
            "error": error,
            "notice": notice(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/inbound-rules")
async def inbound_rules(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await rules_page(request, session, server, identity)


@router.post("/servers/{server_id}/inbound-rules")
async def add_rule(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    rule = field(form, "rule")

    async def create() -> InboundRule:
        return await inbound_service.create_rule(session=session, server_id=server.id, data=InboundRuleCreate(Rule=rule))

    async def refused(r: Refused) -> Response:
        return await rules_page(request, session, r.server, identity, rule=rule, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=create,
        done=lambda _: redirect(server_url(server, "inbound-rules"), notice="rule-added"),
        refused=refused,
    )


@router.post("/servers/{server_id}/inbound-rules/{rule_id}/delete")
async def delete_rule(rule_id: EntityId, server: ServerPage, session: Session, form: CheckedForm) -> Response:
    await inbound_service.delete_rule(session=session, server_id=server.id, rule_id=rule_id)
    return redirect(server_url(server, "inbound-rules"), notice="rule-deleted")
