"""`/messages/outbound` (server token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.core.offload import cpu_bound
from api_service.core.paging import SearchPaging
from api_service.deps import Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.messages import repository, service
from api_service.models import Message
from api_service.servers.deps import CurrentServer
from shared.constants import ErrorCode, MessageStatus
from shared.schemas.base import format_timestamp
from shared.schemas.messages import (
    EmailName,
    MessageDump,
    MessageEvent,
    OutboundMessage,
    OutboundMessageDetails,
    OutboundMessageList,
)

router = APIRouter(route_class=TransactionalRoute, tags=["Messages"])
ERRORS = error_responses(
    invalid="ErrorCode 700: invalid query (status, dates, count + offset > 10000)", not_found="ErrorCode 701: no such message"
)


def summary_fields(m: Message) -> dict[str, object]:
    return {
        "MessageID": str(m.id),
        "Tag": m.tag,
        "MessageStream": m.message_stream,
        "To": [EmailName(**x) for x in m.to],
        "Cc": [EmailName(**x) for x in m.cc],
        "Bcc": [EmailName(**x) for x in m.bcc],
        "Recipients": m.recipients,
        "ReceivedAt": format_timestamp(m.created_at),
        "From": m.from_header,
        "Subject": m.subject,
        "Attachments": m.attachments,
        "Status": m.status,
        "TrackOpens": m.track_opens,
        "TrackLinks": m.track_links,
        "Metadata": m.metadata_,
        "Sandboxed": m.sandboxed,
        "SendAt": format_timestamp(m.send_at) if m.send_at is not None else None,
    }


@router.get("/messages/outbound", response_model=OutboundMessageList, responses=ERRORS)
async def list_outbound(
    request: Request,
    server: CurrentServer,
    session: Session,
    paging: SearchPaging,
    recipient: Annotated[str | None, Query()] = None,
    fromemail: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(description="queued, sent or processed; beyond Postmark, scheduled or cancelled")] = None,
    subject: Annotated[str | None, Query()] = None,
    messagestream: Annotated[str | None, Query()] = None,
    fromdate: Annotated[str | None, Query(description="YYYY-MM-DD or ISO 8601; no offset means US Eastern, as in Postmark")] = None,
    todate: Annotated[str | None, Query(description="Inclusive")] = None,
) -> OutboundMessageList:
    """Search sent messages, newest first. `metadata_<key>=<value>` filters on metadata."""
    status_value = None
    if status:
        status_value = next((s.value for s in MessageStatus if s.value.lower() == status.lower()), None)
        if status_value is None:
            raise PostmarkError(ErrorCode.MESSAGE_QUERY, "status must be queued, sent, processed, scheduled or cancelled.")
    metadata = {k.removeprefix("metadata_"): v for k, v in request.query_params.items() if k.startswith("metadata_")}
    filters = repository.MessageFilter(
        recipient=recipient,
        from_email=fromemail,
        tag=tag,
        status=status_value,
        subject=subject,
        message_stream=messagestream.lower() if messagestream else None,
        from_date=parse_query_date(fromdate, error_code=ErrorCode.MESSAGE_QUERY),
        to_date=parse_query_date(todate, error_code=ErrorCode.MESSAGE_QUERY, end_of_day=True),
        metadata=metadata or None,
    )
    total, rows = await service.list_messages(
        session=session, server_id=server.id, filters=filters, count=paging.count, offset=paging.offset
    )
    return OutboundMessageList(TotalCount=total, Messages=[OutboundMessage(**summary_fields(m)) for m in rows])


@router.get("/messages/outbound/{message_id}/details", response_model=OutboundMessageDetails, responses=ERRORS)
async def outbound_details(message_id: str, server: CurrentServer, session: Session) -> OutboundMessageDetails:
    """A message with its bodies, raw source and events (Delivered, Transient, Bounced …)."""
    message = await service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    text, html = await cpu_bound(len(message.raw_mime), service.bodies, message.raw_mime)
    events = await service.list_events(session=session, message_id=message.id)
    return OutboundMessageDetails(
        **summary_fields(message),
        TextBody=text,
        HtmlBody=html,
        Body=message.raw_mime.decode("utf-8", "replace"),
        MessageEvents=[
            MessageEvent(Recipient=e.recipient, Type=e.type, ReceivedAt=format_timestamp(e.created_at), Details=e.details) for e in events
        ],
    )


@router.get("/messages/outbound/{message_id}/dump", response_model=MessageDump, responses=ERRORS)
async def outbound_dump(message_id: str, server: CurrentServer, session: Session) -> MessageDump:
    """The raw MIME source of a message."""
    message = await service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    return MessageDump(Body=message.raw_mime.decode("utf-8", "replace"))
