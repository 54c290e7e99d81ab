"""ASGI middleware for Postmark's wire rules, applied before routing.

Paths and query keys are matched case-insensitively and a trailing slash is ignored (the
official clients call `/deliveryStats` and POST to `/senders/`); bodies must be JSON; request
bodies are capped before they are read into memory.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_service.core.errors import QUERY_ERROR_CODES
from shared.constants import API_ERROR_CODE_HEADER, MAX_BATCH_BYTES, MAX_BULK_BYTES, MAX_MESSAGE_BYTES, TRACKING_PATH_PREFIX, ErrorCode
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH
from shared.schemas.inbound_smtp import INBOUND_MESSAGE_PATH
from shared.schemas.smtp import SMTP_BATCH_MAX_BYTES, SMTP_BATCH_PATH, SMTP_SUBMIT_PATH

# A JSON body with base64 attachments is larger than the message it describes; allow for the
# JSON and base64 overhead on top of Postmark's 10 MB message limit.
BODY_LIMITS: dict[str, int] = {
    "/email/batch": MAX_BATCH_BYTES,
    "/email/batchwithtemplates": MAX_BATCH_BYTES,
    "/email/bulk": MAX_BULK_BYTES,
    SMTP_SUBMIT_PATH: MAX_MESSAGE_BYTES * 4 // 3 + 64 * 1024,
    BOUNCE_REPORT_PATH: MAX_MESSAGE_BYTES * 4 // 3 + 64 * 1024,
    INBOUND_MESSAGE_PATH: MAX_MESSAGE_BYTES * 4 // 3 + 64 * 1024,
    SMTP_BATCH_PATH: SMTP_BATCH_MAX_BYTES,
}
# Bodies above one message's limit (batches, bulk requests, up to 50 MB) take a few hundred MB and
# ~0.4 s of parsing each: a process parses at most LARGE_BODIES_AT_ONCE of them at a time, and the
# others wait unread (the server stops reading their sockets), so a flood of them can neither
# multiply the memory nor starve the event loop. Small requests never wait for this.
LARGE_BODY_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
LARGE_BODIES_AT_ONCE = 1  # one maximum-size bulk request costs ~250 MB while parsed and stored (bench/ATTACKS.md)
LARGE_BODIES = asyncio.Semaphore(LARGE_BODIES_AT_ONCE)
# Internal paths whose body is not JSON: the gateway hands raw messages over as they are.
RAW_BODY_PATHS = frozenset({SMTP_BATCH_PATH})
DEFAULT_BODY_LIMIT = MAX_MESSAGE_BYTES + 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Not Postmark's API: the web console (HTML with form posts), the public tracking URLs (case-
# sensitive tokens; RFC 8058 one-click posts are forms) and the page a sender signature's
# confirmation link opens (a form post; only paths under it). Their paths keep their case and their
# bodies need not be JSON; the body size limit still applies.
EXEMPT_PATHS = frozenset({"/console"})
EXEMPT_PREFIXES = ("/console/", TRACKING_PATH_PREFIX, "/confirm/sender/")


def is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without Content-Length grows past its limit.

    An HTTPException, because FastAPI turns any other error while reading a body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the {limit // (1024 * 1024)} MB limit.")


def normalise_path(path: str) -> str:
    path = path.lower()
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


class NulInQuery(ValueError):
    """PostgreSQL text cannot hold NUL, so no query parameter may carry one (`%00`)."""


def normalise_query(query: bytes) -> bytes:
    """Lower-case query keys, keeping the case of a `metadata_<key>` suffix. Raises NulInQuery."""
    if not query:
        return query
    pairs = []
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            raise NulInQuery(key.replace("\x00", "")[:100])
        prefix, sep, rest = key.partition("_")
        pairs.append(((prefix.lower() + sep + rest) if prefix.lower() == "metadata" and sep else key.lower(), value))
    return urlencode(pairs).encode("latin-1")


def error_body(error_code: int, message: str) -> bytes:
    return orjson.dumps({"ErrorCode": error_code, "Message": message})


async def send_error(send: Send, status: int, error_code: int, message: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(error_code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (API_ERROR_CODE_HEADER.lower().encode(), str(error_code).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class PostmarkWireMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exempt = is_exempt(scope["path"])
        path = scope["path"] if exempt else normalise_path(scope["path"])
        if "\x00" in path:  # no route has a NUL in it, and a path parameter must not reach the database
            await send_error(send, 404, 404, "There is no endpoint at this path: it contains a NUL character (%00).")
            return
        try:
            query = normalise_query(scope.get("query_string", b""))
        except NulInQuery as exc:
            code = QUERY_ERROR_CODES.get(path.strip("/").split("/", 1)[0], ErrorCode.INVALID_REQUEST_FIELDS)
            await send_error(
                send, 422, code, f"Invalid request parameter(s): '{exc}' contains a NUL character (%00), which is not allowed."
            )
            return
        if not exempt:
            scope = dict(scope, path=path, raw_path=path.encode(), query_string=query)
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return

        headers = {k.lower(): v for k, v in scope["headers"]}
        limit = BODY_LIMITS.get(path, DEFAULT_BODY_LIMIT)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await send_error(
                send, 413, ErrorCode.INVALID_EMAIL_REQUEST, f"The request body is larger than the {limit // (1024 * 1024)} MB limit."
            )
            return
        has_body = (length is None and b"transfer-encoding" in headers) or (length is not None and length not in (b"0", b""))
        content_type = headers.get(b"content-type", b"").lower()
        if has_body and not exempt and path not in RAW_BODY_PATHS and b"json" not in content_type:
            await send_error(
                send,
                415,
                ErrorCode.JSON_REQUIRED,
                "JSON data required: send the body as JSON with the header 'Content-Type: application/json'.",
            )
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        large = length is None or not length.isdigit() or int(length) > LARGE_BODY_BYTES
        try:
            if large and has_body:
                async with LARGE_BODIES:
                    await self.app(scope, limited_receive, tracking_send)
            else:
                await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await send_error(send, 413, ErrorCode.INVALID_EMAIL_REQUEST, exc.detail)
