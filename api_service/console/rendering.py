"""Rendering, security headers and error pages for the console (and the headers of the API docs).

The API keeps its Postmark JSON errors; under /console the same exceptions render a readable
HTML page instead. Every console response carries a strict Content-Security-Policy: scripts and
styles only from Postgate itself, no inline script, never framed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_service.errors import PostmarkError

logger = logging.getLogger("postgate.console")

PREFIX = "/console"
PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATES_DIR = PACKAGE_DIR / "templates"

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
# Paths whose responses get the headers below; the docs pages set their own CSP (see docs.py).
GUARDED_PREFIXES = (PREFIX, "/docs")
BASE_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
}


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_size(value: int) -> str:
    """A byte count as people read it: 812 bytes, 14.2 KB, 3.0 MB (powers of 1024, as mail programs show sizes)."""
    if value < 1024:
        return f"{value} byte{'s' if value != 1 else ''}"
    size, units = value / 1024, ["KB", "MB", "GB"]
    while round(size, 1) >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its name: all output is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = format_time
    env.filters["filesize"] = format_size
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    base: dict[str, Any] = {"identity": None, "server": None, "section": "", "notice": None, "error": None}
    response: HTMLResponse = templates.TemplateResponse(request, template, base | context, status_code=status, headers=headers)
    return response


class SecurityHeadersMiddleware:
    """Adds CSP, framing, referrer and caching headers to console and docs responses that lack them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not any(path == p or path.startswith(p + "/") or path.startswith(p + "-") for p in GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        extra = dict(BASE_HEADERS)
        if is_console_path(path):
            extra["content-security-policy"] = CONSOLE_CSP
            if not path.startswith(PREFIX + "/static/"):
                extra["cache-control"] = "no-store"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name.encode(), value.encode()) for name, value in extra.items() if name.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, with_headers)


class SignInRequired(Exception):
    """Raised by the console's session dependency; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str, *, direct: bool = False) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.direct = direct  # go to next_url itself (a page a half-signed-in session may see)


def error_page(request: Request, *, status: int, title: str, message: str) -> HTMLResponse:
    # No database access here: the error may be that the database is down.
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status)


def console_error(request: Request, exc: Exception) -> HTMLResponse:
    if isinstance(exc, PostmarkError):
        title = {404: "Not found", 401: "Not allowed"}.get(exc.http_status, "That did not work")
        return error_page(request, status=exc.http_status, title=title, message=exc.message)
    if isinstance(exc, RequestValidationError):
        in_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
        if in_path:
            return error_page(request, status=404, title="Not found", message="There is no such page in the console.")
        return error_page(request, status=400, title="Bad request", message="The request had a value the console cannot read.")
    if isinstance(exc, StarletteHTTPException):
        titles = {404: "Not found", 405: "Not allowed", 413: "Too large"}
        message = "There is no such page in the console." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, status=exc.status_code, title=titles.get(exc.status_code, "Error"), message=message)
    error_id = uuid.uuid4()
    logger.exception("console error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return error_page(
        request,
        status=500,
        title="Something went wrong",
        message=f"Postgate could not show this page. The error is logged with the ID {error_id}.",
    )


Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def _console_aware(api_handler: Handler | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_console_path(request.url.path) or api_handler is None:
            return console_error(request, exc)
        response = api_handler(request, exc)
        return await response if isinstance(response, Awaitable) else response

    return handle


async def on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)  # noqa: S101 - registered for this class only
    target = exc.next_url if exc.direct else f"{PREFIX}/sign-in?next={quote(exc.next_url, safe='')}"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def install_error_pages(app: FastAPI) -> None:
    """Wrap the API's error handlers so that console paths get HTML pages; the API keeps its JSON."""
    for exc_class in (PostmarkError, RequestValidationError, StarletteHTTPException, Exception):
        app.exception_handlers[exc_class] = _console_aware(app.exception_handlers.get(exc_class))
    app.add_exception_handler(SignInRequired, on_sign_in_required)
