"""`POST /email` and `POST /email/batch` (server token)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import JSONResponse

from api_service.core.deps import AppSettings, Session, TransactionalRoute, current_server, token_digest
from api_service.core.server_cache import SERVER_SNAPSHOTS, ServerSnapshot
from api_service.email import service
from api_service.email.validation import parse_email
from api_service.errors import PostmarkError
from shared.constants import MAX_BATCH_MESSAGES, SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.base import ErrorResponse, format_timestamp
from shared.schemas.email import EmailRequest, SendResult

router = APIRouter(route_class=TransactionalRoute, tags=["Email"])
TEST_TOKEN = "POSTMARK_API_TEST"  # noqa: S105 - Postmark's public test token, not a secret
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong server token (ErrorCode 10)"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    415: {"model": ErrorResponse, "description": "Body is not JSON (ErrorCode 409)"},
    422: {
        "model": ErrorResponse,
        "description": "300 invalid request, 400 no sender signature, 402 bad JSON, 406 inactive recipients, 410 batch too large, 411 forbidden attachment, 1235 unknown stream",
    },
}
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retry-safe key: the same key and body return the first response"),
]


async def sending_server(request: Request, session: Session) -> ServerSnapshot | None:
    """The sending server's settings, or None for Postmark's test token (validate, send nothing)."""
    token = request.headers.get(SERVER_TOKEN_HEADER, "").strip()
    if token == TEST_TOKEN:
        return None
    digest = token_digest(token)
    snapshot = SERVER_SNAPSHOTS.get(digest)
    if snapshot is None:
        server = await current_server(request, session)
        snapshot = ServerSnapshot(
            id=server.id, track_opens=server.track_opens, track_links=server.track_links, delivery_type=server.delivery_type
        )
        SERVER_SNAPSHOTS.put(digest, snapshot)
    return snapshot


SendingServer = Annotated[ServerSnapshot | None, Depends(sending_server)]


def test_result(request: EmailRequest) -> SendResult:
    parse_email(request)
    return SendResult(
        ErrorCode=0,
        Message="Test job accepted",
        To=request.To,
        SubmittedAt=format_timestamp(datetime.now(UTC)),
        MessageID=str(uuid.uuid4()),
    )


def dump(results: list[SendResult]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude_none=True) for r in results]


@router.post("/email", response_model=SendResult, response_model_exclude_none=True, responses=ERRORS)
async def send_email(
    request: Request,
    session: Session,
    settings: AppSettings,
    server: SendingServer,
    message: Annotated[EmailRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send one email. The message is stored and queued before the 200 is returned."""
    if server is None:
        return test_result(message)
    idem = service.Idempotency.from_request(key=idempotency_key, endpoint="email", body=await request.body())
    replay = await service.begin_idempotent(session=session, server=server, idempotency=idem)
    if replay is not None:
        return JSONResponse(replay.body, status_code=replay.status)
    [result] = await service.send_messages(
        session=session, server=server, requests=[message], batch=False, message_id_domain=settings.message_id_domain
    )
    body = result.model_dump(exclude_none=True)
    await service.finish_idempotent(session=session, server=server, idempotency=idem, body=body)
    return body


@router.post("/email/batch", response_model=list[SendResult], response_model_exclude_none=True, responses=ERRORS)
async def send_batch(
    request: Request,
    session: Session,
    settings: AppSettings,
    server: SendingServer,
    messages: Annotated[list[EmailRequest], Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send up to 500 emails; each gets its own result, in request order."""
    if len(messages) > MAX_BATCH_MESSAGES:
        raise PostmarkError(ErrorCode.TOO_MANY_BATCH_MESSAGES, "You may only send up to 500 messages in a single batched request.")
    if server is None:
        results = []
        for m in messages:
            try:
                results.append(test_result(m))
            except PostmarkError as exc:
                results.append(SendResult(ErrorCode=exc.error_code, Message=exc.message))
        return dump(results)
    idem = service.Idempotency.from_request(key=idempotency_key, endpoint="email/batch", body=await request.body())
    replay = await service.begin_idempotent(session=session, server=server, idempotency=idem)
    if replay is not None:
        return JSONResponse(replay.body, status_code=replay.status)
    results = await service.send_messages(
        session=session, server=server, requests=messages, batch=True, message_id_domain=settings.message_id_domain
    )
    body = dump(results)
    await service.finish_idempotent(session=session, server=server, idempotency=idem, body=body)
    return body
