"""A server's message streams: the list, a new stream, a stream's page, edit, archive and unarchive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, ServerPage, Signed, field, notice_of, redirect, server_url
from api_service.deps import Session, TransactionalRoute
from api_service.models import MessageStream, Server
from api_service.streams import service as streams_service
from shared.constants import StreamType, UnsubscribeHandlingType
from shared.schemas.streams import StreamCreate, StreamEdit, SubscriptionConfig

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

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
    identity: access.Identity,
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
    data = StreamCreate(
        ID=values["id"],
        Name=values["name"],
        MessageStreamType=values["type"],
        Description=values["description"],
        SubscriptionManagementConfiguration=subscription_config(values["type"], values["handling"]),
    )

    async def create() -> MessageStream:
        return await streams_service.create_stream(session=session, server_id=server.id, data=data)

    async def refused(r: Refused) -> Response:
        return await streams_page(request, session, r.server, identity, values=values, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=create,
        done=lambda stream: redirect(server_url(server, f"streams/{stream.stream_id}"), notice="stream-added"),
        refused=refused,
    )


async def stream_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
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
    identity: access.Identity,
    stream_id: str,
    change: Callable[[], Awaitable[MessageStream]],
    *,
    notice: str,
    values: dict[str, str] | None = None,
) -> Response:
    """Run one streams-service change; a refusal re-renders the stream's page with the service's message."""

    async def refused(r: Refused) -> Response:
        return await stream_page(request, session, r.server, identity, stream_id, values=values, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=change,
        done=lambda changed: redirect(server_url(server, f"streams/{changed.stream_id}"), notice=notice),
        refused=refused,
    )


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

    async def edit() -> MessageStream:
        return await streams_service.edit_stream(session=session, server_id=server.id, stream_id=stream_id, data=data)

    return await stream_change(request, session, server, identity, stream_id, edit, notice="saved", values=values)


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
