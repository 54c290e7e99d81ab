"""What every console page shares: reading a posted form, the session and CSRF dependencies, the
page's server, redirects with a notice, paging, and the headers of the sandboxed preview frames."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_service.config import Settings
from api_service.console import service
from api_service.console.access import Capability, Identity, Pending, capability_of
from api_service.console.rendering import PREFIX, SignInRequired
from api_service.core.dates import parse_query_date
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session
from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.servers import service as servers_service
from api_service.streams import service as streams_service
from shared.constants import MAX_PAGE_WINDOW, ErrorCode, StreamType

SESSION_COOKIE = "postgate_console"
SIGN_IN_COOKIE = "postgate_console_sign_in"
SSO_ERROR_COOKIE = "postgate_console_sso_error"
PAGE_SIZE = 25
RAW_SHOWN_BYTES = 256 * 1024
# Starlette's default is 1 MB a field; a template body may be 5 MB (more once URL-encoded). The wire
# middleware caps the whole request body before it is read.
FORM_FIELD_BYTES = 32 * 1024 * 1024
NOTICES = {
    "health-checked": "Checked now: the verdicts below are fresh.",
    "signed-out": "You are signed out.",
    "password-set": "Your password is set: sign in with it.",
    "server-deleted": "The server is deleted.",
    "saved": "Saved.",
    "colour": "The colour is changed.",
    "reactivated": "The recipient is active again; mail to it is delivered.",
    "suppressed": "The addresses are suppressed.",
    "removed": "The suppression is removed; mail to the address is delivered again.",
    "webhook-added": "The webhook is added.",
    "webhook-deleted": "The webhook is deleted.",
    "test-queued": "A test event is queued; the delivery worker sends it within seconds. Reload to see its status.",
    "replay-queued": "The deliveries are queued again with their first payloads; the worker sends them within seconds.",
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
    "token-revoked": "The token is revoked: it stops working at once.",
    "schedule-cancelled": "The scheduled message is cancelled: it will not be sent.",
    "schedule-too-late": "Too late to cancel: the message was already released for delivery.",
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


def search_dates(values: dict[str, str]) -> tuple[datetime | None, datetime | None, str | None]:
    """A search form's `fromdate`/`todate` as the API reads them (`todate` up to the end of its day),
    and the error to show instead when either is not a date."""
    try:
        from_date = parse_query_date(values["fromdate"] or None, error_code=ErrorCode.MESSAGE_QUERY)
        to_date = parse_query_date(values["todate"] or None, error_code=ErrorCode.MESSAGE_QUERY, end_of_day=True)
    except PostmarkError as exc:
        return None, None, exc.message
    return from_date, to_date, None


JSON_BODY_BYTES = 64 * 1024


async def json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > JSON_BODY_BYTES:
        raise service.ConsoleUserError("The request is too large.")
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise service.ConsoleUserError("The request is not JSON.") from exc
    if not isinstance(value, dict):
        raise service.ConsoleUserError("The request is not a JSON object.")
    return value


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


def console_origin(request: Request, settings: Settings) -> str:
    """The origin browsers use for the console: PUBLIC_URL's when set, else the request's."""
    if settings.public_url:
        return settings.public_base_url
    return f"{request.url.scheme}://{request.url.netloc}"


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, secure=is_secure(request), samesite="lax")


def server_url(server: Server, page: str = "") -> str:
    return f"{PREFIX}/servers/{server.id}" + (f"/{page}" if page else "")


async def sendable_streams(session: AsyncSession, server: Server) -> list[Any]:
    """The server's streams that mail can be sent to (every one but Inbound), for stream pickers."""
    return [
        s
        for s in await streams_service.list_streams(session=session, server_id=server.id, stream_type=None, include_archived=True)
        if s.stream_type != StreamType.INBOUND
    ]


# --- dependencies ------------------------------------------------------------------------------


async def session_identity(request: Request, session: Session, settings: AppSettings) -> Identity | None:
    """The session's identity, also while it waits for a second factor (None: not signed in)."""
    return await service.current_identity(session=session, settings=settings, token=request.cookies.get(SESSION_COOKIE))


SessionIdentity = Annotated[Identity | None, Depends(session_identity)]


def _sign_in_target(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return target if request.method == "GET" else f"{PREFIX}/servers"


async def signed_in(request: Request, identity: SessionIdentity) -> Identity:
    if identity is None or identity.pending is Pending.SECOND_FACTOR:
        raise SignInRequired(_sign_in_target(request))
    request.state.console_user = identity.username  # for the audit log
    return identity


Signed = Annotated[Identity, Depends(signed_in)]


async def authorize(request: Request, identity: SessionIdentity) -> None:
    """The one authorisation check of the console, run before every console route: the route's
    capability (`access.RULES`) for the signed-in user and the page's server. A route without a
    rule is refused; a server the user has no role on is not found; a known server they may not
    change is forbidden (403)."""
    route = request.scope.get("route")
    path = getattr(route, "path_format", "")
    capability = capability_of(request.method, path[len(PREFIX) :]) if path.startswith(PREFIX) else None
    if capability is None:
        raise StarletteHTTPException(403, "This page has no access rule.")
    if capability is Capability.PUBLIC:
        return
    if identity is None:
        raise SignInRequired(_sign_in_target(request))
    if capability is Capability.SECOND_FACTOR:
        if identity.pending is not Pending.SECOND_FACTOR:
            raise SignInRequired(f"{PREFIX}/servers")
        return
    if identity.pending is Pending.SECOND_FACTOR:
        raise SignInRequired(_sign_in_target(request))
    if identity.pending is Pending.ENROL and capability is not Capability.SET_UP_TWO_FACTOR:
        # The account requires 2FA and this user has none yet: the enrolment page before anything else.
        raise SignInRequired(f"{PREFIX}/account/two-factor", direct=True)
    request.state.console_user = identity.username  # who the audit log names for a change made here
    raw_server = request.path_params.get("server_id")
    server_id = int(raw_server) if isinstance(raw_server, str) and raw_server.isdigit() and len(raw_server) < 19 else None
    if identity.can(capability, server_id):
        return
    if server_id is not None and not identity.can_see_server(server_id):
        raise StarletteHTTPException(404)
    raise StarletteHTTPException(403, "Your role does not allow this. Ask an Owner of this Postgate for access.")


async def checked_form(request: Request, identity: SessionIdentity) -> FormData:
    """The posted form, after its CSRF token matched the session's (`authorize` has checked the rest)."""
    if identity is None:
        raise SignInRequired(f"{PREFIX}/servers")
    form = await request.form(max_part_size=FORM_FIELD_BYTES)
    given = field(form, "csrf_token") or request.headers.get("X-CSRF-Token")
    if not service.tokens_equal(identity.csrf_token, given):
        raise StarletteHTTPException(403, "This form has expired or was sent from another site. Go back, reload the page and try again.")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


async def page_server(server_id: EntityId, session: Session, identity: Signed) -> Server:
    return await servers_service.get_server_or_raise(session=session, server_id=server_id)


ServerPage = Annotated[Server, Depends(page_server)]


# --- preview frames ----------------------------------------------------------------------------

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
