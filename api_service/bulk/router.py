"""`POST /email/bulk`, `GET /email/bulk/{id}` and `GET /email/bulk` (server token): the Bulk API."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api_service.bulk import service
from api_service.core.errors import error_responses
from api_service.deps import Session, TransactionalRoute
from api_service.email.service import Idempotency, Replay
from api_service.errors import PostmarkError
from api_service.servers.deps import TEST_TOKEN, CurrentServer, SendingServer
from shared.constants import MAX_BULK_TEST_BYTES, MAX_BULK_TEST_ENTRIES, MAX_PAGE_COUNT, SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.bulk import BulkEmailRequest, BulkStatusList, BulkStatusResponse

router = APIRouter(route_class=TransactionalRoute, tags=["Bulk"])
ERRORS = error_responses(
    invalid=(
        "ErrorCodes 11 several problems (listed in `Errors`, by `Messages[i]`), 13 invalid PaginationKey, 300 invalid request, "
        "400 no sender signature, 410 too many entries (10,000; 50 with the test token), 411 forbidden attachment, "
        "1101 no such template, 1122 content that is not a valid template, "
        "1123 content beside a template, 1235 unknown stream, 1236 not a Broadcasts stream"
    ),
    not_found="ErrorCode 12: no such bulk request on this server",
)
ENDPOINT = "email/bulk"


class BulkSubmitRoute(TransactionalRoute):
    """The test token needs no account: its body is capped at `MAX_BULK_TEST_BYTES` before it is parsed into models."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            if request.headers.get(SERVER_TOKEN_HEADER, "").strip() == TEST_TOKEN:
                length = request.headers.get("content-length", "")
                size = int(length) if length.isdigit() else len(await request.body())
                if size > MAX_BULK_TEST_BYTES:
                    raise PostmarkError(
                        ErrorCode.TOO_MANY_BATCH_MESSAGES,
                        f"The test token POSTMARK_API_TEST previews bulk requests of at most {MAX_BULK_TEST_BYTES // 1024:,} KB "
                        f"(and {MAX_BULK_TEST_ENTRIES} entries): use a server token for larger ones.",
                        413,
                    )
            return await handler(request)

        return capped


async def send_bulk(
    request: Request,
    session: Session,
    server: SendingServer,
    bulk: Annotated[BulkEmailRequest, Body()],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", description="Retry-safe key")] = None,
) -> Any:
    """Send one message to many recipients (Broadcasts streams only). The request is checked and stored, and answered
    `Accepted` at once; the worker then releases its messages in batches (see `GET /email/bulk/{id}`)."""
    if server is None:
        return await service.preview(request=bulk)
    idempotency = Idempotency.from_header(key=idempotency_key, endpoint=ENDPOINT, body=await request.body())
    outcome = await service.submit(session=session, server_id=server.id, request=bulk, idempotency=idempotency)
    if isinstance(outcome, Replay):
        return JSONResponse(outcome.body, status_code=outcome.status)
    return outcome


router.add_api_route(
    "/email/bulk",
    send_bulk,
    methods=["POST"],
    response_model=BulkStatusResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    route_class_override=BulkSubmitRoute,
)


@router.get("/email/bulk", response_model=BulkStatusList, response_model_exclude_none=True, responses=ERRORS)
async def list_bulk(
    server: CurrentServer,
    session: Session,
    count: Annotated[int, Query(ge=1, le=MAX_PAGE_COUNT, description="Requests per page, 1-500")] = 100,
    paginationkey: Annotated[str | None, Query(description="`PaginationKey` of the previous page", max_length=200)] = None,
) -> BulkStatusList:
    """This server's bulk requests, newest first."""
    return await service.list_statuses(session=session, server_id=server.id, count=count, pagination_key=paginationkey)


@router.get("/email/bulk/{bulk_id}", response_model=BulkStatusResponse, response_model_exclude_none=True, responses=ERRORS)
async def get_bulk(
    bulk_id: Annotated[str, Path(max_length=64, description="The `Id` that `POST /email/bulk` answered")],
    server: CurrentServer,
    session: Session,
) -> BulkStatusResponse:
    """A bulk request's progress: `TotalMessages`, `ReleasedCount`, `FailedCount`, `PercentageCompleted` and `Status`."""
    return await service.get_status(session=session, server_id=server.id, request_id=bulk_id)
