"""One renderer for every error: Postmark's envelope, never FastAPI's `{"detail": …}`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_service.core.outage import RETRY_AFTER_SECONDS, OutageLog, database_unavailable
from api_service.errors import PostmarkError
from shared.constants import ACCOUNT_TOKEN_HEADER, API_ERROR_CODE_HEADER, SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.base import NUL_REFUSED, UNSTORABLE_REFUSED, ErrorResponse

logger = logging.getLogger("postgate.api")
DATABASE_OUTAGE = OutageLog(logger, what="API")

# ErrorCode for a bad query or path parameter, by the first path segment.
QUERY_ERROR_CODES: dict[str, int] = {
    "bounces": ErrorCode.BOUNCE_QUERY,
    "deliverystats": ErrorCode.BOUNCE_QUERY,
    "messages": ErrorCode.MESSAGE_QUERY,
    "servers": ErrorCode.SERVER_QUERY,
    "server": ErrorCode.SERVER_QUERY,
    "senders": ErrorCode.SIGNATURE_QUERY,
    "domains": ErrorCode.DOMAIN_INVALID_FIELDS,
    "templates": ErrorCode.TEMPLATE_QUERY,
    "triggers": ErrorCode.TRIGGER_QUERY,
    "data-removals": ErrorCode.DATA_REMOVAL_INVALID,
}


def query_error_code(path: str) -> int:
    """The ErrorCode of a bad query parameter on `path`, so a route's own checks and FastAPI's agree."""
    return QUERY_ERROR_CODES.get(path.strip("/").split("/", 1)[0], ErrorCode.INVALID_REQUEST_FIELDS)


def postmark_response(status: int, error_code: int, message: str, extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(
        {"ErrorCode": error_code, "Message": message} | (extra or {}),
        status_code=status,
        headers={API_ERROR_CODE_HEADER: str(error_code)},
    )


def describe_location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc[1:]] or [str(loc[0])]
    # A dict key in the location may be the very text that cannot be encoded: never echo it raw.
    return ".".join(parts).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return postmark_response(422, ErrorCode.INVALID_JSON, "Received invalid JSON input.")
    body_errors = [e for e in errors if e["loc"] and e["loc"][0] == "body"]
    if body_errors:
        if any(len(e["loc"]) == 1 for e in body_errors):
            return postmark_response(
                422, ErrorCode.INVALID_JSON, "Received invalid JSON input: the body must be a JSON object (or, for a batch, an array)."
            )
        fields = sorted({describe_location(e["loc"]) for e in body_errors})
        nul = f" ({UNSTORABLE_REFUSED})" if any(NUL_REFUSED in str(e.get("msg", "")) for e in body_errors) else ""
        return postmark_response(422, ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - {', '.join(fields)}{nul}.")
    code = query_error_code(request.url.path)
    details = "; ".join(f"'{describe_location(e['loc'])}': {e['msg']}" for e in errors)
    return postmark_response(422, code, f"Invalid request parameter(s): {details}.")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PostmarkError)
    async def on_postmark_error(request: Request, exc: PostmarkError) -> Response:
        return postmark_response(exc.http_status, exc.error_code, exc.message, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        return validation_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return postmark_response(404, 404, f"There is no endpoint at {request.method} {request.url.path}.")
        if exc.status_code == 405:
            return postmark_response(405, 405, f"Method {request.method} is not allowed on {request.url.path}.")
        if exc.status_code == 413:
            return postmark_response(413, ErrorCode.INVALID_EMAIL_REQUEST, str(exc.detail))
        if exc.status_code == 400:
            return postmark_response(422, ErrorCode.INVALID_JSON, "Received invalid JSON input.")
        return postmark_response(exc.status_code, exc.status_code, str(exc.detail))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if database_unavailable(exc):
            DATABASE_OUTAGE.failed(exc)
            response = postmark_response(
                503,
                ErrorCode.MAINTENANCE,
                "Postgate cannot reach its database right now; nothing was stored. Retry the same request later.",
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        error_id = uuid.uuid4()
        # The one line for this error (UnhandledErrors does not re-raise it): its id is the one the client got.
        logger.error(
            "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc, extra={"request_id": str(error_id)}
        )
        return postmark_response(500, ErrorCode.INTERNAL_ERROR, f"An unexpected error occurred. Error ID: {error_id}")

    # The classes a database outage raises get handlers of their own: Starlette answers with the
    # `Exception` handler and then re-raises, so the server logs a traceback per request on top.
    for error_class in (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(error_class, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)


class UnhandledErrors:
    """Answers an exception no handler took (500 with its Error ID, or 503 for an outage) with the app's
    `Exception` handler, and does not re-raise it.

    Starlette's ServerErrorMiddleware answers such an exception and then re-raises it, so that uvicorn
    logs its traceback a second time and closes the connection the answer went out on: a client's next
    request on that keep-alive connection got `Connection reset by peer`. Installed just inside the
    request log middleware; an exception after the response started is still re-raised (the response
    cannot be completed, so the connection has to close).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tap(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tap)
        except Exception as exc:
            handler = scope["app"].exception_handlers.get(Exception) if "app" in scope else None
            if started or handler is None:
                raise
            response = await handler(Request(scope), exc)
            await response(scope, receive, send)


def error_responses(*, invalid: str, not_found: str | None = None, account: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a router: Postmark's envelope with the ErrorCodes each status carries."""
    header = ACCOUNT_TOKEN_HEADER if account else SERVER_TOKEN_HEADER
    responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse, "description": f"ErrorCode 10: missing or wrong {header}"},
        422: {"model": ErrorResponse, "description": f"{invalid}; 402 invalid JSON, 403 a field of the wrong type"},
        415: {"model": ErrorResponse, "description": "ErrorCode 409: the body is not JSON"},
        500: {"model": ErrorResponse, "description": "ErrorCode 101: unexpected error, with an Error ID to report"},
        503: {"model": ErrorResponse, "description": "ErrorCode 100: the database is unavailable; nothing was stored; retry (Retry-After)"},
    }
    if not_found:
        responses[404] = {"model": ErrorResponse, "description": not_found}
    return responses
