"""`/message-streams` (server token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api_service.core.errors import error_responses
from api_service.deps import Session, TransactionalRoute
from api_service.models import MessageStream as StreamRow
from api_service.servers.deps import CurrentServer
from api_service.streams import service
from shared.schemas.base import format_timestamp
from shared.schemas.streams import (
    MessageStream,
    MessageStreamList,
    StreamArchived,
    StreamCreate,
    StreamEdit,
    SubscriptionManagement,
)

router = APIRouter(route_class=TransactionalRoute, tags=["Message streams"])
ERRORS = error_responses(
    invalid=(
        "ErrorCodes 1221 MessageStreamType, 1222 ID required, 1223 Name required, 1224 Name too long, 1225 ten streams already, "
        "1226 no such stream, 1227 ID format, 1228 one inbound stream, 1229 default stream, 1230 ID exists, 1231 Description too long, "
        "1232 cannot unarchive, 1233 pm- prefix, 1234 HTML in Description, 1237 reserved ID, 1239/1240 UnsubscribeHandlingType"
    )
)


def to_wire(stream: StreamRow) -> MessageStream:
    purge = service.expected_purge_date(stream)
    return MessageStream(
        ID=stream.stream_id,
        ServerID=stream.server_id,
        Name=stream.name,
        Description=stream.description,
        MessageStreamType=stream.stream_type,
        CreatedAt=format_timestamp(stream.created_at),
        UpdatedAt=format_timestamp(stream.updated_at) if stream.updated_at else None,
        ArchivedAt=format_timestamp(stream.archived_at) if stream.archived_at else None,
        ExpectedPurgeDate=format_timestamp(purge) if purge else None,
        SubscriptionManagementConfiguration=SubscriptionManagement(UnsubscribeHandlingType=stream.unsubscribe_handling),
        PauseOnComplaints=stream.pause_on_complaints,
        PausedAt=format_timestamp(stream.paused_at) if stream.paused_at else None,
        PausedReason=stream.paused_reason,
    )


@router.get("/message-streams", response_model=MessageStreamList, responses=ERRORS)
async def list_streams(
    server: CurrentServer,
    session: Session,
    messagestreamtype: Annotated[str | None, Query(description="All (default), Inbound, Transactional or Broadcasts")] = None,
    includearchivedstreams: Annotated[bool, Query(description="Include archived streams (default false)")] = False,
) -> MessageStreamList:
    """List the server's message streams."""
    streams = await service.list_streams(
        session=session,
        server_id=server.id,
        stream_type=service.parse_type_filter(messagestreamtype),
        include_archived=includearchivedstreams,
    )
    return MessageStreamList(MessageStreams=[to_wire(s) for s in streams], TotalCount=len(streams))


@router.post("/message-streams", response_model=MessageStream, responses=ERRORS)
async def create_stream(server: CurrentServer, session: Session, data: Annotated[StreamCreate, Body()]) -> MessageStream:
    """Create a Transactional or Broadcasts stream (at most ten per server)."""
    return to_wire(await service.create_stream(session=session, server_id=server.id, data=data))


@router.get("/message-streams/{stream}", response_model=MessageStream, responses=ERRORS)
async def get_stream(stream: str, server: CurrentServer, session: Session) -> MessageStream:
    """Get a message stream."""
    return to_wire(await service.get_stream_or_raise(session=session, server_id=server.id, stream_id=stream))


@router.patch("/message-streams/{stream}", response_model=MessageStream, responses=ERRORS)
async def edit_stream(stream: str, server: CurrentServer, session: Session, data: Annotated[StreamEdit, Body()]) -> MessageStream:
    """Edit a stream's Name, Description or unsubscribe handling."""
    return to_wire(await service.edit_stream(session=session, server_id=server.id, stream_id=stream, data=data))


@router.post("/message-streams/{stream}/archive", response_model=StreamArchived, responses=ERRORS)
async def archive_stream(stream: str, server: CurrentServer, session: Session) -> StreamArchived:
    """Archive a stream: mail to it is refused until it is unarchived."""
    archived, purge = await service.archive_stream(session=session, server_id=server.id, stream_id=stream)
    return StreamArchived(ID=archived.stream_id, ServerID=archived.server_id, ExpectedPurgeDate=format_timestamp(purge))


@router.post("/message-streams/{stream}/unarchive", response_model=MessageStream, responses=ERRORS)
async def unarchive_stream(stream: str, server: CurrentServer, session: Session) -> MessageStream:
    """Bring an archived stream back."""
    return to_wire(await service.unarchive_stream(session=session, server_id=server.id, stream_id=stream))
