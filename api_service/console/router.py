"""The console's pages, assembled: one router per section (see `console/pages/`), in an order that
keeps fixed paths ahead of the path parameters that would also match them, and last the console's
own 404 for anything else under /console.

Each page reads or changes data only through the domain services, so a change made here has the
same rules and side effects (webhooks, suppressions, cache clearing) as the same change made
through the API. Forms post `application/x-www-form-urlencoded` and carry the session's CSRF token;
they change data through `console.forms.submit`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_service.console.pages import (
    account,
    activity,
    audit,
    auth,
    bounces,
    delivery,
    domains,
    inbound,
    inbound_rules,
    messages,
    sender_health,
    senders,
    servers,
    settings,
    sso,
    stats,
    streams,
    suppressions,
    template_editor,
    templates,
    tls_reports,
    tokens,
    users,
    webhooks,
)
from api_service.console.rendering import PREFIX
from api_service.console.web import authorize, redirect
from api_service.deps import TransactionalRoute

# `templates` before `template_editor`: /templates/push must not be read as /templates/{template_id}.
SECTIONS = (
    account,
    templates,
    template_editor,
    inbound,
    inbound_rules,
    auth,
    sso,
    servers,
    activity,
    messages,
    bounces,
    suppressions,
    streams,
    webhooks,
    settings,
    stats,
    domains,
    senders,
    tls_reports,
    sender_health,
    delivery,
    tokens,
    audit,
    users,
)

# `authorize` is given to every section here, so no page can go without the access check.
router = APIRouter()
for section in SECTIONS:
    router.include_router(section.router, dependencies=[Depends(authorize)])

fallback = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


@fallback.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def not_found(request: Request, rest: str) -> Response:
    """Anything else under /console: the console's 404 page, not the API's JSON."""
    if rest == "" and request.method == "GET":
        return redirect(f"{PREFIX}/servers")
    raise StarletteHTTPException(404)


router.include_router(fallback, dependencies=[Depends(authorize)])
