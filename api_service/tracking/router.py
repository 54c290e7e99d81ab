"""The opens and clicks API (server token), and the public tracking URLs mail clients fetch.

The public routes (`TRACKING_PATH_PREFIX`) take no token, keep the path's case (tokens are
case-sensitive) and accept any body (a one-click unsubscribe is a form POST); the wire
middleware exempts that prefix. They never tell a valid token from a forged one by anything
but the click redirect's 404.
"""

from __future__ import annotations

import base64
import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.core.geoip import NOWHERE, Locator
from api_service.core.paging import SearchPaging
from api_service.deps import Session, TransactionalRoute
from api_service.domains import service as domains
from api_service.servers.deps import CurrentServer
from api_service.tracking import service
from api_service.tracking.copies import CLICK_SEGMENT, OPEN_SEGMENT, UNSUBSCRIBE_SEGMENT
from shared.constants import DEFAULT_MESSAGE_STREAM, TRACKING_PATH_PREFIX, ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.tracking import ClickEvent, ClickList, OpenEvent, OpenList

router = APIRouter(route_class=TransactionalRoute, tags=["Messages"])
public_router = APIRouter(route_class=TransactionalRoute, include_in_schema=False)
ERRORS = error_responses(invalid="ErrorCode 700: invalid query (dates, count + offset > 10000)", not_found="ErrorCode 701: no such message")

TRACKING_DOMAIN_CHECK_PATH = "/tracking/domain-check"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache", "Expires": "0"}
PAGE_HEADERS = NO_STORE | {"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
FILTERS = ("client_name", "client_company", "client_family", "os_name", "os_family", "os_company", "platform", "country", "region", "city")


def client_ip(request: Request) -> str:
    """The peer address; behind a proxy, uvicorn puts X-Forwarded-For here for trusted proxies
    (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else ""


# --- the opens and clicks API ---------------------------------------------------------------------


def _filters(request: Request, *, message_stream: str | None, tag: str | None, recipient: str | None) -> service.ActivityFilter:
    """Postmark documents snake_case filter names; postmark-python sends camelCase ones."""
    query = request.query_params
    filters = service.ActivityFilter(
        recipient=recipient,
        tag=tag,
        message_stream=(message_stream or DEFAULT_MESSAGE_STREAM).lower(),
        from_date=parse_query_date(query.get("fromdate"), error_code=ErrorCode.MESSAGE_QUERY),
        to_date=parse_query_date(query.get("todate"), error_code=ErrorCode.MESSAGE_QUERY, end_of_day=True),
    )
    for name in FILTERS:
        setattr(filters, name, query.get(name) or query.get(name.replace("_", "")) or None)
    return filters


RecipientQuery = Annotated[str | None, Query(description="Recipient address (substring)")]
TagQuery = Annotated[str | None, Query()]
StreamQuery = Annotated[str | None, Query(description="Stream ID; default outbound")]
ClientQuery = Annotated[str | None, Query(description="Also client_company, client_family, os_name, os_family, os_company")]
PlatformQuery = Annotated[str | None, Query(description="Desktop, Mobile, WebMail or Unknown")]


@router.get("/messages/outbound/opens", response_model=OpenList, responses=ERRORS)
async def list_opens(
    request: Request,
    server: CurrentServer,
    session: Session,
    paging: SearchPaging,
    recipient: RecipientQuery = None,
    tag: TagQuery = None,
    messagestream: StreamQuery = None,
    client_name: ClientQuery = None,
    platform: PlatformQuery = None,
) -> OpenList:
    """Opens of tracked messages, newest first (every open; `FirstOpen` marks a recipient's first)."""
    filters = _filters(request, message_stream=messagestream, tag=tag, recipient=recipient)
    total, found = await service.opens_page(session=session, server_id=server.id, filters=filters, count=paging.count, offset=paging.offset)
    return OpenList(TotalCount=total, Opens=[OpenEvent.model_validate(o.model_dump(mode="json")) for o in found])


@router.get("/messages/outbound/opens/{message_id}", response_model=OpenList, responses=ERRORS)
async def message_opens(message_id: str, server: CurrentServer, session: Session, paging: SearchPaging) -> OpenList:
    """Opens of one message."""
    total, found = await service.opens_page(
        session=session,
        server_id=server.id,
        filters=service.ActivityFilter(),
        count=paging.count,
        offset=paging.offset,
        message_id=message_id,
    )
    return OpenList(TotalCount=total, Opens=[OpenEvent.model_validate(o.model_dump(mode="json")) for o in found])


@router.get("/messages/outbound/clicks", response_model=ClickList, responses=ERRORS)
async def list_clicks(
    request: Request,
    server: CurrentServer,
    session: Session,
    paging: SearchPaging,
    recipient: RecipientQuery = None,
    tag: TagQuery = None,
    messagestream: StreamQuery = None,
    client_name: ClientQuery = None,
    platform: PlatformQuery = None,
) -> ClickList:
    """Clicks on tracked links, newest first."""
    filters = _filters(request, message_stream=messagestream, tag=tag, recipient=recipient)
    total, found = await service.clicks_page(
        session=session, server_id=server.id, filters=filters, count=paging.count, offset=paging.offset
    )
    return ClickList(TotalCount=total, Clicks=[ClickEvent.model_validate(c.model_dump(mode="json")) for c in found])


@router.get("/messages/outbound/clicks/{message_id}", response_model=ClickList, responses=ERRORS)
async def message_clicks(message_id: str, server: CurrentServer, session: Session, paging: SearchPaging) -> ClickList:
    """Clicks on the tracked links of one message."""
    total, found = await service.clicks_page(
        session=session,
        server_id=server.id,
        filters=service.ActivityFilter(),
        count=paging.count,
        offset=paging.offset,
        message_id=message_id,
    )
    return ClickList(TotalCount=total, Clicks=[ClickEvent.model_validate(c.model_dump(mode="json")) for c in found])


# --- the public URLs in mail ----------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}"
        "button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=PAGE_HEADERS)


def _unknown_link() -> HTMLResponse:
    return _page("Link not found", "<p>This link is not valid.</p>", status=404)


def hit_of(request: Request) -> service.Hit:
    """Who is fetching, from where (the Geo read from the database on this machine: `core.geoip`)."""
    ip = client_ip(request)
    locator: Locator | None = getattr(request.app.state, "geo", None)
    return service.Hit(
        user_agent=request.headers.get("user-agent", ""),
        ip=ip,
        method=request.method,
        geo=locator.locate(ip) if locator is not None else NOWHERE,
    )


# HEAD too: link checkers and scanners send it (and are recorded as machines); a HEAD answer has no body.
@public_router.api_route(f"{TRACKING_PATH_PREFIX}{OPEN_SEGMENT}/{{token}}", methods=["GET", "HEAD"])
async def open_pixel(token: str, request: Request, session: Session) -> Response:
    """The open-tracking pixel: a 1×1 GIF whatever the token."""
    await service.record_open(session=session, token=token, hit=hit_of(request))
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@public_router.api_route(f"{TRACKING_PATH_PREFIX}{CLICK_SEGMENT}/{{token}}", methods=["GET", "HEAD"])
async def follow_link(token: str, request: Request, session: Session) -> Response:
    """A tracked link: record the click, then 302 to the link that was in the message."""
    url = await service.follow_link(session=session, token=token, hit=hit_of(request))
    if url is None:
        return _unknown_link()
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


@public_router.get(f"{TRACKING_PATH_PREFIX}{UNSUBSCRIBE_SEGMENT}/{{token}}")
async def unsubscribe_page(token: str, session: Session) -> Response:
    """Ask to confirm: a GET never unsubscribes (mail scanners follow links)."""
    target = await service.unsubscribe_target(session=session, token=token)
    if target is None:
        return _unknown_link()
    return _page(
        "Unsubscribe",
        f"<p>Stop sending <strong>{html.escape(target.stream_name)}</strong> to <strong>{html.escape(target.recipient)}</strong>?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@public_router.post(f"{TRACKING_PATH_PREFIX}{UNSUBSCRIBE_SEGMENT}/{{token}}")
async def unsubscribe(token: str, session: Session) -> Response:
    """RFC 8058 one-click unsubscribe (`List-Unsubscribe=One-Click`), and the page's button."""
    target = await service.unsubscribe(session=session, token=token)
    if target is None:
        return _unknown_link()
    return _page(
        "Unsubscribed",
        f"<p><strong>{html.escape(target.recipient)}</strong> will get no more <strong>{html.escape(target.stream_name)}</strong>.</p>",
    )


@public_router.get(TRACKING_DOMAIN_CHECK_PATH, response_model=ErrorResponse)
async def tracking_domain_check(session: Session, domain: Annotated[str, Query(max_length=300)] = "") -> Response:
    """For the TLS proxy's on-demand certificates (Caddy's `ask`): 200 when `domain` is a verified
    TrackingDomain, 404 otherwise, so no certificate is asked for a name Postgate does not serve."""
    if await domains.is_tracking_host(session=session, host=domain):
        return JSONResponse({"ErrorCode": int(ErrorCode.OK), "Message": "OK"})
    return JSONResponse({"ErrorCode": int(ErrorCode.DOMAIN_NOT_FOUND), "Message": "Not a verified tracking domain."}, status_code=404)
