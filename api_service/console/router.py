"""The console's pages. Each route reads or changes data only through the domain services (and
their repositories' read functions), so a change made here has the same rules and side effects
(webhooks, suppressions, cache clearing) as the same change made through the API.

Forms post `application/x-www-form-urlencoded` and carry the session's CSRF token; after a change
the browser is redirected (303) to a page that shows it. A refused change re-renders the page
with the domain's message and nothing written (the transaction is rolled back).
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_service.bounces import repository as bounces_repository
from api_service.bounces import service as bounces_service
from api_service.bounces.repository import BounceRow
from api_service.config import Settings
from api_service.console import service
from api_service.console.charts import Series, bar_chart
from api_service.console.pages import PREFIX, SignInRequired, render
from api_service.core.dates import parse_query_date
from api_service.core.deps import AppSettings, Session, TransactionalRoute
from api_service.core.paging import EntityId
from api_service.domains import service as domains_service
from api_service.domains.dns import lookup_for
from api_service.errors import PostmarkError
from api_service.messages import repository as messages_repository
from api_service.messages import service as messages_service
from api_service.models import MessageClick, MessageOpen, MessageStream, Server
from api_service.senders import service as senders_service
from api_service.servers import service as servers_service
from api_service.servers.router import MASK, to_wire
from api_service.stats import service as stats_service
from api_service.stats.repository import EASTERN as STATS_TIME_ZONE
from api_service.streams import service as streams_service
from api_service.suppressions import service as suppressions_service
from api_service.webhooks import service as webhooks_service
from shared.constants import (
    BOUNCE_TYPE_BY_NAME,
    BOUNCE_TYPES,
    DEFAULT_MESSAGE_STREAM,
    MAX_PAGE_WINDOW,
    SERVER_COLORS,
    BounceType,
    ErrorCode,
    MessageEventType,
    MessageStatus,
    StreamType,
    TrackLinks,
    UnsubscribeHandlingType,
)
from shared.schemas.senders import DomainCreate, SenderCreate
from shared.schemas.servers import ServerCreate, ServerEdit
from shared.schemas.stats import StatsSeries
from shared.schemas.streams import StreamCreate, StreamEdit, SubscriptionConfig
from shared.schemas.suppressions import SuppressionAddress, SuppressionChange
from shared.schemas.webhooks import WebhookHttpAuth, WebhookHttpHeader, WebhookWrite

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

SESSION_COOKIE = "postgate_console"
SIGN_IN_COOKIE = "postgate_console_sign_in"
PAGE_SIZE = 25
RAW_SHOWN_BYTES = 256 * 1024
# Starlette's default is 1 MB a field; a template body may be 5 MB (more once URL-encoded). The wire
# middleware caps the whole request body before it is read.
FORM_FIELD_BYTES = 32 * 1024 * 1024
TIMELINE_READS = 100  # the newest opens, and the newest clicks, a message page shows
STATS_DAYS = (7, 30, 90)
NOTICES = {
    "signed-out": "You are signed out.",
    "server-deleted": "The server is deleted.",
    "saved": "Saved.",
    "colour": "The colour is changed.",
    "reactivated": "The recipient is active again; mail to it is delivered.",
    "suppressed": "The addresses are suppressed.",
    "removed": "The suppression is removed; mail to the address is delivered again.",
    "webhook-added": "The webhook is added.",
    "webhook-deleted": "The webhook is deleted.",
    "test-queued": "A test event is queued; the delivery worker sends it within seconds. Reload to see its status.",
    "smtp-on": "SMTP is on for this server.",
    "smtp-off": "SMTP is off for this server.",
    "dkim-verified": "The DKIM record is published and matches.",
    "dkim-missing": "The DKIM record was not found in DNS, or does not match yet. DNS changes can take a while.",
    "domain-deleted": "The domain is deleted.",
    "sender-added": "The sender signature is added; it can send at once.",
    "sender-mailed": "The sender signature is added; it can send once the confirmation link mailed to it is followed.",
    "sender-deleted": "The sender signature is deleted.",
    "stream-added": "The stream is created; send to it with its ID as MessageStream.",
    "stream-archived": "The stream is archived: mail sent to it is refused until it is unarchived.",
    "stream-unarchived": "The stream is active again.",
}
WEBHOOK_TRIGGERS = ("Delivery", "Bounce", "SpamComplaint", "SubscriptionChange", "Open", "Click")
HOOK_FIELDS = (
    ("BounceHookUrl", "bounce_hook_url", "Bounce"),
    ("DeliveryHookUrl", "delivery_hook_url", "Delivery"),
    ("OpenHookUrl", "open_hook_url", "Open"),
    ("ClickHookUrl", "click_hook_url", "Click"),
)
SPAM_THRESHOLDS = tuple(range(0, 31, 5))


def bounce_view(row: BounceRow) -> dict[str, object]:
    """What the bounce tables show: the bounce's fields, with `inactive` read from the suppression list."""
    b = row.bounce
    return {
        "id": b.id,
        "type": b.type,
        "email": b.email,
        "message_id": b.message_id,
        "subject": b.subject,
        "details": b.details,
        "bounced_at": b.bounced_at,
        "inactive": row.inactive,
        "can_activate": b.can_activate,
    }


# --- request helpers ---------------------------------------------------------------------------


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


def checked(form: FormData, name: str) -> bool:
    return field(form, name) in ("on", "true", "1")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(value: str | None) -> str:
    """Only a console path of this host: never `//evil.example` or `https://…`."""
    if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/servers"


def notice_of(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice", ""))


def redirect(url: str, *, notice: str | None = None) -> RedirectResponse:
    if notice:
        path, _, fragment = url.partition("#")
        url = f"{path}{'&' if '?' in path else '?'}notice={notice}" + (f"#{fragment}" if fragment else "")
    return RedirectResponse(url, status_code=303)


def page_number(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("page", "1")), MAX_PAGE_WINDOW // PAGE_SIZE))
    except ValueError:
        return 1


@dataclass(frozen=True, slots=True)
class Pager:
    page: int
    total: int
    size: int
    query: dict[str, str]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def url(self, page: int) -> str:
        return "?" + urlencode({**self.query, "page": page})


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, secure=is_secure(request), samesite="lax")


async def signed_in(request: Request, session: Session, settings: AppSettings) -> service.Identity:
    identity = await service.current_identity(session=session, settings=settings, token=request.cookies.get(SESSION_COOKIE))
    if identity is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target if request.method == "GET" else f"{PREFIX}/servers")
    return identity


Signed = Annotated[service.Identity, Depends(signed_in)]


async def checked_form(request: Request, identity: Signed) -> FormData:
    """The posted form, after its CSRF token matched the session's."""
    form = await request.form(max_part_size=FORM_FIELD_BYTES)
    given = field(form, "csrf_token") or request.headers.get("X-CSRF-Token")
    if not service.tokens_equal(identity.csrf_token, given):
        raise StarletteHTTPException(403, "This form has expired or was sent from another site. Go back, reload the page and try again.")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


async def page_server(server_id: EntityId, session: Session, identity: Signed) -> Server:
    return await servers_service.get_server_or_raise(session=session, server_id=server_id)


ServerPage = Annotated[Server, Depends(page_server)]


async def failed(session: AsyncSession, server_id: int | None = None) -> Server | None:
    """Undo whatever a refused change did to the session; reload the server for the page."""
    await session.rollback()
    if server_id is None:
        return None
    return await servers_service.get_server_or_raise(session=session, server_id=server_id)


def server_url(server: Server, page: str = "") -> str:
    return f"{PREFIX}/servers/{server.id}" + (f"/{page}" if page else "")


# --- sign-in -----------------------------------------------------------------------------------


def sign_in_page(
    request: Request, *, token: str, next_url: str, error: str | None = None, status: int = 200, username: str = ""
) -> HTMLResponse:
    response = render(
        request,
        "sign_in.html",
        {"form_token": token, "next_url": next_url, "error": error, "notice": notice_of(request), "username": username or "admin"},
        status=status,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.get("")
async def console_home(identity: Signed) -> RedirectResponse:
    return redirect(f"{PREFIX}/servers")


@router.get("/sign-in")
async def sign_in_form(request: Request, session: Session, settings: AppSettings) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if await service.current_identity(session=session, settings=settings, token=request.cookies.get(SESSION_COOKIE)):
        return redirect(next_url)
    token = request.cookies.get(SIGN_IN_COOKIE) or uuid.uuid4().hex
    return sign_in_page(request, token=token, next_url=next_url)


@router.post("/sign-in")
async def sign_in(request: Request, session: Session, settings: AppSettings) -> Response:
    form = await request.form()
    next_url = safe_next(field(form, "next"))
    username = field(form, "username")[:64]
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not service.tokens_equal(expected, field(form, "csrf_token")):
        return sign_in_page(
            request,
            token=uuid.uuid4().hex,
            next_url=next_url,
            username=username,
            status=400,
            error="The sign-in form expired (or cookies are off). Please try again.",
        )
    result = await service.sign_in(
        session=session, settings=settings, username=username, password=field(form, "password"), client_ip=client_ip(request)
    )
    if result.retry_after is not None:
        minutes = -(-result.retry_after // 60)
        response = sign_in_page(
            request,
            token=expected,
            next_url=next_url,
            username=username,
            status=429,
            error=f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.token is None:
        return sign_in_page(request, token=expected, next_url=next_url, username=username, status=401, error="Wrong user name or password.")
    signed = redirect(next_url)
    set_cookie(signed, request, SESSION_COOKIE, result.token, max_age=int(settings.console_session_hours * 3600))
    signed.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return signed


@router.post("/sign-out")
async def sign_out(request: Request, session: Session, form: CheckedForm) -> Response:
    await service.sign_out(session=session, token=request.cookies.get(SESSION_COOKIE))
    response = redirect(f"{PREFIX}/sign-in", notice="signed-out")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=is_secure(request), httponly=True, samesite="lax")
    return response


# --- servers -----------------------------------------------------------------------------------


async def servers_page(
    request: Request,
    session: AsyncSession,
    identity: service.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    total, servers = await servers_service.list_servers(session=session, count=500, offset=0, name=request.query_params.get("name") or None)
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
async def create_server(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> HTMLResponse:
    values = {"name": field(form, "name"), "color": field(form, "color", "purple"), "delivery_type": field(form, "delivery_type", "Live")}
    data = ServerCreate(Name=values["name"], Color=values["color"], DeliveryType=values["delivery_type"])
    try:
        created = await servers_service.create_server(session=session, data=data, url_guard=settings.webhook_url_guard())
    except PostmarkError as exc:
        await failed(session)
        return await servers_page(request, session, identity, error=exc.message, status=422, values=values)
    wire = to_wire(created.server, tokens=[created.token], settings=settings)
    return render(
        request,
        "server_created.html",
        {"identity": identity, "server": created.server, "section": "servers", "token": created.token, "smtp": wire.SmtpConnection},
        status=201,
    )


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


# --- activity ----------------------------------------------------------------------------------

ACTIVITY_KEYS = ("recipient", "subject", "tag", "status", "stream", "fromdate", "todate")


@dataclass(slots=True)
class ActivityQuery:
    values: dict[str, str]
    filters: messages_repository.MessageFilter
    error: str | None


def activity_query(request: Request) -> ActivityQuery:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in ACTIVITY_KEYS}
    error = None
    status = next((s.value for s in MessageStatus if s.value.lower() == values["status"].lower()), None)
    try:
        from_date = parse_query_date(values["fromdate"] or None, error_code=ErrorCode.MESSAGE_QUERY)
        to_date = parse_query_date(values["todate"] or None, error_code=ErrorCode.MESSAGE_QUERY, end_of_day=True)
    except PostmarkError as exc:
        error, from_date, to_date = exc.message, None, None
    filters = messages_repository.MessageFilter(
        recipient=values["recipient"] or None,
        subject=values["subject"] or None,
        tag=values["tag"] or None,
        status=status,
        message_stream=values["stream"].lower() or None,
        from_date=from_date,
        to_date=to_date,
    )
    return ActivityQuery(values=values, filters=filters, error=error)


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
        "streams": await servers_service.list_streams(session=session, server_id=server.id),
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


# --- one message -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    type: str
    at: datetime
    recipient: str
    details: list[tuple[str, str]]


def reader_details(row: MessageOpen | MessageClick) -> list[tuple[str, str]]:
    """Who opened or clicked, as the tracking service recorded it."""
    return [("Client", row.client_name), ("OS", row.os_name), ("Platform", row.platform)]


def decoded_header(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError):
        return value


def message_headers(raw: bytes) -> list[tuple[str, str]]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return [(name, decoded_header(str(value))) for name, value in parsed.items()]


def message_bodies(raw: bytes) -> tuple[str, str, str | None]:
    """(text, html, problem): a message whose MIME cannot be decoded still gets a page."""
    try:
        text, html = messages_service.bodies(raw)
    except (LookupError, ValueError, UnicodeError, AttributeError, KeyError) as exc:
        return "", "", f"The body could not be decoded ({type(exc).__name__}); see the raw source."
    return text, html, None


REMOTE_CONTENT = re.compile(r"""(?:src|background|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def html_preview_csp(*, images: bool) -> str:
    """For the message HTML: nothing runs, nothing loads, except remote images after a click."""
    img = "data: cid: http: https:" if images else "data: cid:"
    return (
        f"default-src 'none'; img-src {img}; style-src 'unsafe-inline'; font-src data:; form-action 'none'; "
        "base-uri 'none'; frame-ancestors 'self'; sandbox"
    )


def html_preview_headers(*, images: bool) -> dict[str, str]:
    """The headers of every response shown in a preview frame (a message's HTML, a template's rendering)."""
    return {
        "Content-Security-Policy": html_preview_csp(images=images),
        "X-Frame-Options": "SAMEORIGIN",
        # Remote images (when loaded) must not learn the console's address.
        "Referrer-Policy": "no-referrer",
    }


@router.get("/servers/{server_id}/messages/{message_id}")
async def message_page(request: Request, message_id: str, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    events = await messages_service.list_events(session=session, message_id=message.id)
    of_message = messages_service.ActivityFilter(message_id=message.id)
    opens_total, opens = await messages_service.list_opens(
        session=session, server_id=server.id, filters=of_message, count=TIMELINE_READS, offset=0
    )
    clicks_total, clicks = await messages_service.list_clicks(
        session=session, server_id=server.id, filters=of_message, count=TIMELINE_READS, offset=0
    )
    timeline = [
        TimelineEntry(
            type="Queued", at=message.created_at, recipient=", ".join(message.recipients), details=[("Source", message.source.upper())]
        )
    ]
    # Opens and clicks come from their own rows, which hold the reader's client, OS and platform.
    timeline += [
        TimelineEntry(
            type=e.type,
            at=e.created_at,
            recipient=e.recipient,
            details=[(str(k), str(v)) for k, v in e.details.items() if v not in ("", None)],
        )
        for e in events
        if e.type not in (MessageEventType.OPENED, MessageEventType.LINK_CLICKED)
    ]
    timeline += [TimelineEntry(type="Opened", at=o.created_at, recipient=o.recipient, details=reader_details(o)) for o in opens]
    timeline += [
        TimelineEntry(
            type="Clicked",
            at=c.created_at,
            recipient=c.recipient,
            details=[("Link", c.original_link), ("In", f"{c.click_location} part"), *reader_details(c)],
        )
        for c in clicks
    ]
    timeline.sort(key=lambda entry: entry.at)
    text, html, problem = message_bodies(message.raw_mime)
    raw = message.raw_mime[:RAW_SHOWN_BYTES].decode("utf-8", "replace")
    images = request.query_params.get("images") == "1"
    bounces = await bounces_service.list_bounces(
        session=session,
        server_id=server.id,
        filters=bounces_repository.BounceFilter(message_id=message.id, message_stream=message.message_stream),
        count=50,
        offset=0,
    )
    return render(
        request,
        "message.html",
        {
            "identity": identity,
            "server": server,
            "section": "activity",
            "message": message,
            "timeline": timeline,
            "headers": message_headers(message.raw_mime),
            "text_body": text,
            "has_html": bool(html),
            "has_remote": bool(REMOTE_CONTENT.search(html)),
            "images": images,
            "problem": problem,
            "raw": raw,
            "raw_truncated": len(message.raw_mime) > RAW_SHOWN_BYTES,
            "bounces": [bounce_view(row) for row in bounces[1]],
            "reads_left_out": opens_total - len(opens) + clicks_total - len(clicks),
        },
    )


@router.get("/servers/{server_id}/messages/{message_id}/html")
async def message_html(request: Request, message_id: str, server: ServerPage, session: Session) -> HTMLResponse:
    """The message's own HTML, for the sandboxed preview frame only: its CSP forbids scripts and remote loads."""
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    _, html, _ = message_bodies(message.raw_mime)
    return HTMLResponse(html, headers=html_preview_headers(images=request.query_params.get("images") == "1"))


@router.get("/servers/{server_id}/messages/{message_id}/raw")
async def message_raw(message_id: str, server: ServerPage, session: Session) -> Response:
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    return Response(
        message.raw_mime,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{message.id}.eml"'},
    )


# --- bounces -----------------------------------------------------------------------------------


async def bounces_page(
    request: Request, session: AsyncSession, server: Server, identity: service.Identity, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in ("type", "email", "state", "stream")}
    bounce_type = BOUNCE_TYPE_BY_NAME.get(values["type"].lower())
    page = page_number(request)
    filters = bounces_repository.BounceFilter(
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
            "bounces": [bounce_view(row) for row in rows],
            "type_names": {t.value: info.name for t, info in BOUNCE_TYPES.items()},
            "types": [t.value for t in BounceType],
            "counts": [(t.value, BOUNCE_TYPES[t].name, c) for t, c in counts],
            "inactive_count": inactive,
            "values": values,
            "streams": [
                s for s in await servers_service.list_streams(session=session, server_id=server.id) if s.stream_type != StreamType.INBOUND
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
    server_id = server.id
    try:
        await bounces_service.activate(session=session, server_id=server_id, bounce_id=bounce_id)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await bounces_page(request, session, reloaded, identity, error=exc.message, status=exc.http_status)
    return redirect(safe_next(field(form, "back")) if field(form, "back") else server_url(server, "bounces"), notice="reactivated")


# --- suppressions ------------------------------------------------------------------------------


async def sendable_streams(session: AsyncSession, server: Server) -> list[Any]:
    return [s for s in await servers_service.list_streams(session=session, server_id=server.id) if s.stream_type != StreamType.INBOUND]


async def suppressions_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    *,
    stream: str,
    error: str | None = None,
    status: int = 200,
    results: list[Any] | None = None,
) -> HTMLResponse:
    stream_id = await suppressions_service.check_stream(session=session, server=server, stream=stream)
    email = request.query_params.get("email", "").strip()[:320]
    rows = await suppressions_service.dump(
        session=session, server_id=server.id, stream=stream_id, reason=None, origin=None, email=email or None, from_date=None, to_date=None
    )
    return render(
        request,
        "suppressions.html",
        {
            "identity": identity,
            "server": server,
            "section": "suppressions",
            "stream": stream_id,
            "streams": await sendable_streams(session, server),
            "rows": rows,
            "email": email,
            "error": error,
            "results": results or [],
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/suppressions")
async def suppressions(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await suppressions_page(request, session, server, identity, stream=request.query_params.get("stream") or DEFAULT_MESSAGE_STREAM)


def parse_addresses(text: str) -> list[str]:
    return [a for a in re.split(r"[\s,;]+", text) if a]


@router.post("/servers/{server_id}/suppressions")
async def add_suppressions(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    stream = field(form, "stream", DEFAULT_MESSAGE_STREAM)
    server_id = server.id
    data = SuppressionChange(Suppressions=[SuppressionAddress(EmailAddress=a) for a in parse_addresses(field(form, "addresses"))])
    try:
        stream_id = await suppressions_service.check_stream(session=session, server=server, stream=stream)
        results = await suppressions_service.suppress_many(session=session, server=server, stream=stream_id, data=data)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await suppressions_page(
            request, session, reloaded, identity, stream=DEFAULT_MESSAGE_STREAM, error=exc.message, status=exc.http_status
        )
    refused = [r for r in results if r.Status == "Failed"]
    if refused:
        return await suppressions_page(
            request, session, server, identity, stream=stream_id, results=refused, status=422, error="Some addresses were not suppressed."
        )
    return redirect(server_url(server, "suppressions") + f"?stream={stream_id}", notice="suppressed")


@router.post("/servers/{server_id}/suppressions/delete")
async def remove_suppression(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    stream = field(form, "stream", DEFAULT_MESSAGE_STREAM)
    server_id = server.id
    data = SuppressionChange(Suppressions=[SuppressionAddress(EmailAddress=field(form, "email"))])
    try:
        stream_id = await suppressions_service.check_stream(session=session, server=server, stream=stream)
        results = await suppressions_service.lift_many(session=session, server=server, stream=stream_id, data=data)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await suppressions_page(
            request, session, reloaded, identity, stream=DEFAULT_MESSAGE_STREAM, error=exc.message, status=exc.http_status
        )
    refused = [r for r in results if r.Status == "Failed"]
    if refused:
        return await suppressions_page(
            request, session, server, identity, stream=stream_id, results=refused, status=422, error="The suppression was not removed."
        )
    return redirect(server_url(server, "suppressions") + f"?stream={stream_id}", notice="removed")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A spreadsheet must not run a cell as a formula (OWASP CSV injection): such cells get a leading quote."""
    return "'" + value if value.startswith(FORMULA_START) else value


def suppressions_csv(rows: list[tuple[str, str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["EmailAddress", "SuppressionReason", "Origin", "CreatedAt"])
    writer.writerows([[csv_cell(c) for c in row] for row in rows])
    return out.getvalue()


@router.get("/servers/{server_id}/suppressions.csv")
async def export_suppressions(request: Request, server: ServerPage, session: Session) -> Response:
    stream_id = await suppressions_service.check_stream(
        session=session, server=server, stream=request.query_params.get("stream") or DEFAULT_MESSAGE_STREAM
    )
    rows = await suppressions_service.dump(
        session=session, server_id=server.id, stream=stream_id, reason=None, origin=None, email=None, from_date=None, to_date=None
    )
    body = suppressions_csv([(r.email, r.reason, r.origin, r.created_at.astimezone(UTC).isoformat()) for r in rows])
    filename = f"suppressions-server{server.id}-{stream_id}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- streams -----------------------------------------------------------------------------------

NEW_STREAM_TYPES = (StreamType.TRANSACTIONAL.value, StreamType.BROADCASTS.value)
BROADCAST_HANDLING = (UnsubscribeHandlingType.POSTMARK.value, UnsubscribeHandlingType.CUSTOM.value)


def stream_values(form: FormData | None = None) -> dict[str, str]:
    if form is None:
        return {
            "id": "",
            "name": "",
            "type": StreamType.TRANSACTIONAL.value,
            "description": "",
            "handling": UnsubscribeHandlingType.POSTMARK.value,
        }
    return {
        "id": field(form, "id"),
        "name": field(form, "name"),
        "type": field(form, "type"),
        "description": field(form, "description"),
        "handling": field(form, "handling"),
    }


def subscription_config(stream_type: str, handling: str) -> SubscriptionConfig | None:
    """Only a Broadcasts stream has a choice; the streams service checks the value."""
    return SubscriptionConfig(UnsubscribeHandlingType=handling) if stream_type == StreamType.BROADCASTS.value and handling else None


async def streams_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    rows = await streams_service.list_streams(session=session, server_id=server.id, stream_type=None, include_archived=True)
    return render(
        request,
        "streams.html",
        {
            "identity": identity,
            "server": server,
            "section": "streams",
            "streams": rows,
            "purge": {s.stream_id: streams_service.expected_purge_date(s) for s in rows},
            "types": NEW_STREAM_TYPES,
            "handlings": BROADCAST_HANDLING,
            "max_streams": streams_service.MAX_STREAMS,
            "values": values or stream_values(),
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/streams")
async def streams(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await streams_page(request, session, server, identity)


@router.post("/servers/{server_id}/streams")
async def add_stream(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    values = stream_values(form)
    server_id = server.id
    data = StreamCreate(
        ID=values["id"],
        Name=values["name"],
        MessageStreamType=values["type"],
        Description=values["description"],
        SubscriptionManagementConfiguration=subscription_config(values["type"], values["handling"]),
    )
    try:
        stream = await streams_service.create_stream(session=session, server_id=server_id, data=data)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await streams_page(request, session, reloaded, identity, values=values, error=exc.message, status=422)
    return redirect(server_url(server, f"streams/{stream.stream_id}"), notice="stream-added")


async def stream_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    stream_id: str,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    stream = await streams_service.get_stream(session=session, server_id=server.id, stream_id=stream_id)
    if stream is None:
        raise StarletteHTTPException(404)
    return render(
        request,
        "stream.html",
        {
            "identity": identity,
            "server": server,
            "section": "streams",
            "stream": stream,
            "purge_at": streams_service.expected_purge_date(stream),
            "purge_days": streams_service.PURGE_AFTER.days,
            "can_archive": stream.stream_id not in streams_service.UNARCHIVABLE,
            "handlings": BROADCAST_HANDLING,
            "values": values or {"name": stream.name, "description": stream.description or "", "handling": stream.unsubscribe_handling},
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/streams/{stream_id}")
async def stream(request: Request, stream_id: str, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await stream_page(request, session, server, identity, stream_id)


async def stream_change(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    stream_id: str,
    change: Callable[[], Awaitable[MessageStream]],
    *,
    notice: str,
) -> Response:
    """Run one streams-service change; a refusal re-renders the stream's page with the service's message."""
    server_id = server.id
    try:
        changed = await change()
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await stream_page(request, session, reloaded, identity, stream_id, error=exc.message, status=422)
    return redirect(server_url(server, f"streams/{changed.stream_id}"), notice=notice)


@router.post("/servers/{server_id}/streams/{stream_id}")
async def edit_stream(
    request: Request, stream_id: str, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    current = await streams_service.get_stream(session=session, server_id=server.id, stream_id=stream_id)
    if current is None:
        raise StarletteHTTPException(404)
    values = stream_values(form)
    data = StreamEdit(
        Name=values["name"],
        Description=values["description"],
        SubscriptionManagementConfiguration=subscription_config(current.stream_type, values["handling"]),
    )
    server_id = server.id
    try:
        await streams_service.edit_stream(session=session, server_id=server_id, stream_id=stream_id, data=data)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await stream_page(request, session, reloaded, identity, stream_id, values=values, error=exc.message, status=422)
    return redirect(server_url(server, f"streams/{current.stream_id}"), notice="saved")


@router.post("/servers/{server_id}/streams/{stream_id}/archive")
async def archive_stream(
    request: Request, stream_id: str, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    async def archive() -> MessageStream:
        archived, _ = await streams_service.archive_stream(session=session, server_id=server.id, stream_id=stream_id)
        return archived

    return await stream_change(request, session, server, identity, stream_id, archive, notice="stream-archived")


@router.post("/servers/{server_id}/streams/{stream_id}/unarchive")
async def unarchive_stream(
    request: Request, stream_id: str, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    async def unarchive() -> MessageStream:
        return await streams_service.unarchive_stream(session=session, server_id=server.id, stream_id=stream_id)

    return await stream_change(request, session, server, identity, stream_id, unarchive, notice="stream-unarchived")


# --- webhooks ----------------------------------------------------------------------------------


def parse_headers(text: str) -> list[WebhookHttpHeader]:
    headers = []
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers.append(WebhookHttpHeader(Name=name.strip(), Value=value.strip()))
    return headers


def webhook_write(form: FormData, *, stream: str | None, keep_password: str = "") -> WebhookWrite:
    triggers: dict[str, dict[str, Any]] = {name: {"Enabled": checked(form, f"trigger_{name}")} for name in WEBHOOK_TRIGGERS}
    triggers["Bounce"]["IncludeContent"] = checked(form, "include_content_Bounce")
    triggers["SpamComplaint"]["IncludeContent"] = checked(form, "include_content_SpamComplaint")
    triggers["Open"]["PostFirstOpenOnly"] = checked(form, "post_first_open_only")
    username = field(form, "auth_username").strip()
    password = field(form, "auth_password") or (keep_password if username else "")
    return WebhookWrite(
        Url=field(form, "url"),
        MessageStream=stream,
        HttpAuth=WebhookHttpAuth(Username=username, Password=password),
        HttpHeaders=parse_headers(field(form, "headers")),
        Triggers=triggers,
    )


def webhook_values(form: FormData | None = None, hook: Any = None) -> dict[str, Any]:
    if form is not None:
        return {
            "url": field(form, "url"),
            "stream": field(form, "stream", DEFAULT_MESSAGE_STREAM),
            "auth_username": field(form, "auth_username"),
            "headers": field(form, "headers"),
            "enabled": {n: checked(form, f"trigger_{n}") for n in WEBHOOK_TRIGGERS},
            "include_content": {n: checked(form, f"include_content_{n}") for n in ("Bounce", "SpamComplaint")},
            "post_first_open_only": checked(form, "post_first_open_only"),
        }
    if hook is not None:
        return {
            "url": hook.url,
            "stream": hook.message_stream,
            "auth_username": hook.http_auth_username,
            "headers": "\n".join(f"{h['Name']}: {h['Value']}" for h in hook.http_headers),
            "enabled": {n: bool(hook.triggers.get(n, {}).get("Enabled")) for n in WEBHOOK_TRIGGERS},
            "include_content": {n: bool(hook.triggers.get(n, {}).get("IncludeContent")) for n in ("Bounce", "SpamComplaint")},
            "post_first_open_only": bool(hook.triggers.get("Open", {}).get("PostFirstOpenOnly")),
        }
    return {
        "url": "",
        "stream": DEFAULT_MESSAGE_STREAM,
        "auth_username": "",
        "headers": "",
        "enabled": {n: n in ("Bounce", "Delivery") for n in WEBHOOK_TRIGGERS},
        "include_content": {"Bounce": False, "SpamComplaint": False},
        "post_first_open_only": False,
    }


async def webhooks_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    hooks = await webhooks_service.list_webhooks(session=session, server_id=server.id, stream=None)
    return render(
        request,
        "webhooks.html",
        {
            "identity": identity,
            "server": server,
            "section": "webhooks",
            "hooks": hooks,
            "streams": await sendable_streams(session, server),
            "triggers": WEBHOOK_TRIGGERS,
            "values": values or webhook_values(),
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/webhooks")
async def webhooks(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await webhooks_page(request, session, server, identity)


@router.post("/servers/{server_id}/webhooks")
async def add_webhook(
    request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    server_id = server.id
    try:
        hook = await webhooks_service.create_webhook(
            session=session,
            server=server,
            data=webhook_write(form, stream=field(form, "stream", DEFAULT_MESSAGE_STREAM)),
            url_guard=settings.webhook_url_guard(),
        )
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await webhooks_page(request, session, reloaded, identity, values=webhook_values(form), error=exc.message, status=422)
    return redirect(server_url(server, f"webhooks/{hook.id}"), notice="webhook-added")


async def webhook_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    webhook_id: int,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    deliveries = await webhooks_service.recent_deliveries(session=session, server_id=server.id, hook=hook)
    return render(
        request,
        "webhook.html",
        {
            "identity": identity,
            "server": server,
            "section": "webhooks",
            "hook": hook,
            "deliveries": deliveries,
            "triggers": WEBHOOK_TRIGGERS,
            "test_triggers": webhooks_service.TEST_TRIGGERS,
            "values": values or webhook_values(hook=hook),
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/webhooks/{webhook_id}")
async def webhook(request: Request, webhook_id: EntityId, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await webhook_page(request, session, server, identity, webhook_id)


@router.post("/servers/{server_id}/webhooks/{webhook_id}")
async def edit_webhook(
    request: Request,
    webhook_id: EntityId,
    server: ServerPage,
    session: Session,
    settings: AppSettings,
    identity: Signed,
    form: CheckedForm,
) -> Response:
    server_id = server.id
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server_id, webhook_id=webhook_id)
    try:
        await webhooks_service.edit_webhook(
            session=session,
            hook=hook,
            data=webhook_write(form, stream=None, keep_password=hook.http_auth_password),
            url_guard=settings.webhook_url_guard(),
        )
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await webhook_page(
            request, session, reloaded, identity, webhook_id, values=webhook_values(form), error=exc.message, status=422
        )
    return redirect(server_url(server, f"webhooks/{webhook_id}"), notice="saved")


@router.post("/servers/{server_id}/webhooks/{webhook_id}/test")
async def test_webhook(webhook_id: EntityId, server: ServerPage, session: Session, form: CheckedForm) -> Response:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await webhooks_service.send_test(session=session, server=server, hook=hook, trigger=field(form, "trigger", "Bounce"))
    return redirect(server_url(server, f"webhooks/{webhook_id}"), notice="test-queued")


@router.post("/servers/{server_id}/webhooks/{webhook_id}/delete")
async def delete_webhook(webhook_id: EntityId, server: ServerPage, session: Session, form: CheckedForm) -> Response:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await webhooks_service.delete_webhook(session=session, hook=hook)
    return redirect(server_url(server, "webhooks"), notice="webhook-deleted")


# --- settings ----------------------------------------------------------------------------------


def tls_summary(settings: Settings) -> str:
    parts = []
    if settings.smtp_tls_cert:
        parts.append("STARTTLS on every port")
    if settings.smtp_tls_port:
        parts.append(f"implicit TLS on port {settings.smtp_tls_port}")
    return ", ".join(parts) or "Not configured: set SMTP_TLS_CERT and SMTP_TLS_KEY on the gateway to offer STARTTLS"


@dataclass(frozen=True, slots=True)
class DnsRecord:
    label: str
    kind: str
    host: str
    value: str
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class InboundDns:
    """The records that bring a server's inbound mail to the MX listener, and why they may not work yet."""

    records: list[DnsRecord]
    warnings: list[str]


MX_PRIORITY = 10


def inbound_dns(*, inbound_domain: str, server_domain: str, mx_host: str) -> InboundDns:
    """An MX record for INBOUND_DOMAIN (and for the server's own InboundDomain) naming the host of the
    MX listener. An MX must name a host, never an address (RFC 5321 section 5.1), so when that host is
    configured as an IP address the records name `mx.<INBOUND_DOMAIN>` and add its A or AAAA record."""
    target = mx_host.strip().rstrip(".")
    warnings = []
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(target.strip("[]"))
    if address is not None:
        target = f"mx.{inbound_domain}"
        if not address.is_global:
            warnings.append(
                f"The listener's host is {address}, which other mail servers cannot reach: set SMTP_PUBLIC_HOST "
                "to the public name of the host that runs the gateway."
            )
    elif target == "localhost" or target.endswith(".localhost"):
        warnings.append(f"The listener's host is {target}: set SMTP_PUBLIC_HOST to the public name of the host that runs the gateway.")
    if inbound_domain == "localhost" or inbound_domain.endswith(".localhost"):
        warnings.append(f"INBOUND_DOMAIN is {inbound_domain}, which cannot be published: set it to a domain whose DNS you control.")
    records = [DnsRecord("Inbound addresses", "MX", inbound_domain, target, MX_PRIORITY)]
    if server_domain:
        records.append(DnsRecord("This server's inbound domain", "MX", server_domain, target, MX_PRIORITY))
    if address is not None:
        records.append(DnsRecord("The listener's host", "AAAA" if address.version == 6 else "A", target, str(address)))
    return InboundDns(records=records, warnings=warnings)


async def settings_page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    server: Server,
    identity: service.Identity,
    *,
    error: str | None = None,
    error_card: str = "",
    status: int = 200,
) -> HTMLResponse:
    hints = (await servers_service.token_hints(session=session, server_ids=[server.id]))[server.id]
    wire = to_wire(server, tokens=[f"{MASK}{h}" for h in hints], settings=settings)
    connection = wire.SmtpConnection
    assert connection is not None  # noqa: S101 - to_wire always describes the SMTP connection
    extra = [int(p) for p in re.split(r"[\s,]+", settings.smtp_extra_ports) if p.isdigit()]
    ports = [*connection.Ports, *[p for p in extra if p not in connection.Ports]]
    return render(
        request,
        "settings.html",
        {
            "identity": identity,
            "server": server,
            "section": "settings",
            "wire": wire,
            "smtp": connection,
            "smtp_ports": ports,
            "token_hints": hints,
            "tls": tls_summary(settings),
            "colors": SERVER_COLORS,
            "track_links": [t.value for t in TrackLinks],
            "hook_fields": HOOK_FIELDS,
            "inbound_address": wire.InboundAddress,
            "inbound_dns": inbound_dns(
                inbound_domain=settings.inbound_domain, server_domain=server.inbound_domain, mx_host=connection.Host
            ),
            "spam_thresholds": SPAM_THRESHOLDS,
            "error": error,
            "error_card": error_card,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/settings")
async def server_settings(request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    return await settings_page(request, session, settings, server, identity)


SETTINGS_CARDS = ("general", "tracking", "hooks", "inbound")


def spam_threshold(value: str) -> int:
    try:
        return int(value.strip() or "0")
    except ValueError:
        raise PostmarkError(ErrorCode.INVALID_SPAM_THRESHOLD, "InboundSpamThreshold must be a number: 0 (off), or 5 to 30.") from None


def settings_edit(card: str, form: FormData) -> ServerEdit:
    if card == "general":
        return ServerEdit(Name=field(form, "name"), Color=field(form, "color"))
    if card == "tracking":
        return ServerEdit(TrackOpens=checked(form, "track_opens"), TrackLinks=field(form, "track_links", "None"))
    if card == "inbound":
        return ServerEdit(
            InboundDomain=field(form, "InboundDomain"),
            InboundHookUrl=field(form, "InboundHookUrl"),
            InboundSpamThreshold=spam_threshold(field(form, "InboundSpamThreshold")),
            RawEmailEnabled=checked(form, "RawEmailEnabled"),
        )
    edit: dict[str, Any] = {name: field(form, name) for name, _, _ in HOOK_FIELDS}
    edit |= {
        "IncludeBounceContentInHook": checked(form, "IncludeBounceContentInHook"),
        "EnableSmtpApiErrorHooks": checked(form, "EnableSmtpApiErrorHooks"),
        "PostFirstOpenOnly": checked(form, "PostFirstOpenOnly"),
    }
    return ServerEdit(**edit)


@router.post("/servers/{server_id}/settings/smtp")
async def toggle_smtp(server: ServerPage, session: Session, settings: AppSettings, form: CheckedForm) -> Response:
    enabled = field(form, "enabled") == "true"
    await servers_service.edit_server(
        session=session, server=server, data=ServerEdit(SmtpApiActivated=enabled), url_guard=settings.webhook_url_guard()
    )
    return redirect(server_url(server, "settings#smtp"), notice="smtp-on" if enabled else "smtp-off")


@router.post("/servers/{server_id}/settings/{card}")
async def save_settings(
    request: Request, card: str, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    if card not in SETTINGS_CARDS:
        raise StarletteHTTPException(404)
    server_id = server.id
    try:
        await servers_service.edit_server(
            session=session, server=server, data=settings_edit(card, form), url_guard=settings.webhook_url_guard()
        )
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await settings_page(request, session, settings, reloaded, identity, error=exc.message, error_card=card, status=422)
    return redirect(server_url(server, f"settings#{card}"), notice="saved")


# --- stats -------------------------------------------------------------------------------------


def per_day(result: StatsSeries, key: str, days: list[date]) -> list[int]:
    """One key of a stats-service series, one number per day (Postmark's series leave out zeros)."""
    by_day = {d["Date"]: int(d.get(key, 0)) for d in result.Days}
    return [by_day.get(day.isoformat(), 0) for day in days]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A small table: how a total splits (by platform, by email client), largest first."""

    title: str
    rows: list[tuple[str, int, float]]


def breakdown(title: str, result: StatsSeries) -> Breakdown:
    totals = {str(k): int(v) for k, v in (result.model_extra or {}).items()}
    whole = sum(totals.values())
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return Breakdown(title=title, rows=[(name, n, 100 * n / whole) for name, n in ordered if n])


@router.get("/servers/{server_id}/stats")
async def stats(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    try:
        span = int(request.query_params.get("days", "30"))
    except ValueError:
        span = 30
    span = span if span in STATS_DAYS else 30
    # The stats service counts US Eastern days, as Postmark's stats do.
    zone = ZoneInfo(STATS_TIME_ZONE)
    today = datetime.now(zone).date()
    days = [today - timedelta(days=span - 1 - i) for i in range(span)]
    f = stats_service.StatsFilter(server_id=server.id, from_date=datetime.combine(days[0], time.min, zone))
    overview = await stats_service.overview(session=session, f=f)
    opens = await stats_service.opens(session=session, f=f)
    clicks = await stats_service.clicks(session=session, f=f)
    series = [
        Series(key="sends", label="sent", values=per_day(await stats_service.sends(session=session, f=f), "Sent", days)),
        Series(key="bounces", label="bounced", values=per_day(await stats_service.bounced(session=session, f=f), "Bounced", days)),
        Series(key="opens", label="opened", values=per_day(opens, "Opens", days)),
        Series(key="clicks", label="clicked", values=per_day(clicks, "Clicks", days)),
    ]
    columns = [
        *[(s.label.capitalize(), s.values) for s in series[:3]],
        ("Unique opens", per_day(opens, "Unique", days)),
        ("Clicked", series[3].values),
        ("Unique link clicks", per_day(clicks, "Unique", days)),
    ]
    return render(
        request,
        "stats.html",
        {
            "identity": identity,
            "server": server,
            "section": "stats",
            "span": span,
            "spans": STATS_DAYS,
            "chart": bar_chart(days, series, title=f"Messages sent, bounced, opened and clicked per day, last {span} days"),
            "series": series,
            "columns": [name for name, _ in columns],
            "rows": [(d, [values[i] for _, values in columns]) for i, d in reversed(list(enumerate(days)))],
            "overview": overview,
            "breakdowns": [
                breakdown("Opens by platform", await stats_service.open_platforms(session=session, f=f)),
                breakdown("Opens by email client", await stats_service.email_clients(session=session, f=f)),
                breakdown("Clicks by platform", await stats_service.click_platforms(session=session, f=f)),
            ],
        },
    )


# --- domains and sender signatures (account-wide) -----------------------------------------------


async def domains_page(
    request: Request,
    session: AsyncSession,
    identity: service.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    _, rows = await domains_service.list_domains(session=session, count=500, offset=0)
    return render(
        request,
        "domains.html",
        {
            "identity": identity,
            "section": "domains",
            "domains": rows,
            "error": error,
            "notice": notice_of(request),
            "values": values or {"name": "", "return_path": ""},
        },
        status=status,
    )


@router.get("/domains")
async def domains(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await domains_page(request, session, identity)


@router.post("/domains")
async def add_domain(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    values = {"name": field(form, "name"), "return_path": field(form, "return_path")}
    try:
        domain = await domains_service.create_domain(
            session=session,
            data=DomainCreate(Name=values["name"], ReturnPathDomain=values["return_path"] or None),
            auto_confirm=settings.sender_auto_confirm,
        )
    except PostmarkError as exc:
        await failed(session)
        return await domains_page(request, session, identity, error=exc.message, status=422, values=values)
    return redirect(f"{PREFIX}/domains/{domain.id}")


@router.get("/domains/{domain_id}")
async def domain(request: Request, domain_id: EntityId, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    row = await domains_service.get_domain_or_raise(session=session, domain_id=domain_id)
    records = [
        ("DKIM", "TXT", f"{row.dkim_selector}._domainkey.{row.name}", f"k=rsa;p={row.dkim_public_key}", row.dkim_verified),
        ("SPF", "TXT", row.name, settings.spf_text_value, row.spf_verified),
    ]
    if row.dkim_pending_selector:  # a rotated key: publish it beside the current one, which signs until it is seen
        records.insert(
            1,
            (
                "DKIM (new key)",
                "TXT",
                f"{row.dkim_pending_selector}._domainkey.{row.name}",
                f"k=rsa;p={row.dkim_pending_public_key}",
                False,
            ),
        )
    if row.return_path_domain:
        records.append(("Return path", "CNAME", row.return_path_domain, settings.return_path_domain, row.return_path_verified))
    return render(
        request,
        "domain.html",
        {
            "identity": identity,
            "section": "domains",
            "domain": row,
            "records": records,
            "return_path": settings.return_path_domain,
            "notice": notice_of(request),
        },
    )


@router.post("/domains/{domain_id}/verify-dkim")
async def verify_dkim(domain_id: EntityId, session: Session, settings: AppSettings, form: CheckedForm) -> Response:
    row = await domains_service.verify_dkim(session=session, domain_id=domain_id, dns=lookup_for(settings.dns_resolver))
    return redirect(f"{PREFIX}/domains/{domain_id}", notice="dkim-verified" if row.dkim_verified else "dkim-missing")


@router.post("/domains/{domain_id}/delete")
async def delete_domain(domain_id: EntityId, session: Session, form: CheckedForm) -> Response:
    await domains_service.delete_domain(session=session, domain_id=domain_id)
    return redirect(f"{PREFIX}/domains", notice="domain-deleted")


async def senders_page(
    request: Request,
    session: AsyncSession,
    identity: service.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    _, rows = await senders_service.list_signatures(session=session, count=500, offset=0)
    return render(
        request,
        "senders.html",
        {
            "identity": identity,
            "section": "senders",
            "senders": rows,
            "error": error,
            "notice": notice_of(request),
            "values": values or {"email": "", "name": "", "reply_to": ""},
        },
        status=status,
    )


@router.get("/senders")
async def senders(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await senders_page(request, session, identity)


@router.post("/senders")
async def add_sender(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    values = {"email": field(form, "email"), "name": field(form, "name"), "reply_to": field(form, "reply_to")}
    try:
        added = await senders_service.create_signature(
            session=session,
            data=SenderCreate(FromEmail=values["email"], Name=values["name"], ReplyToEmail=values["reply_to"] or None),
            settings=settings,
        )
    except PostmarkError as exc:
        await failed(session)
        return await senders_page(request, session, identity, error=exc.message, status=422, values=values)
    return redirect(f"{PREFIX}/senders", notice="sender-added" if added.signature.confirmed else "sender-mailed")


@router.post("/senders/{signature_id}/delete")
async def delete_sender(signature_id: EntityId, session: Session, form: CheckedForm) -> Response:
    await senders_service.delete_signature(session=session, signature_id=signature_id)
    return redirect(f"{PREFIX}/senders", notice="sender-deleted")


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def not_found(request: Request, rest: str) -> Response:
    """Anything else under /console: the console's 404 page, not the API's JSON."""
    if rest == "" and request.method == "GET":
        return redirect(f"{PREFIX}/servers")
    raise StarletteHTTPException(404)
