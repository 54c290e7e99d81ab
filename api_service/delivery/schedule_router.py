"""Beyond Postmark: `/messages/outbound/{id}/schedule` (server token), cancel or move a scheduled message's release.

The routes live with the delivery queue, which holds the lock that decides a cancel racing a release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.dates import parse_send_at
from api_service.core.errors import error_responses
from api_service.delivery import queue
from api_service.deps import Session, TransactionalRoute
from api_service.errors import InvalidEmailRequest
from api_service.messages import service
from api_service.servers.deps import CurrentServer
from shared.constants import MAX_SCHEDULE_DAYS, MessageStatus
from shared.schemas.base import format_timestamp
from shared.schemas.messages import ScheduleRequest, ScheduleResult

router = APIRouter(route_class=TransactionalRoute, tags=["Messages"])
ERRORS = error_responses(
    invalid="ErrorCode 300: not scheduled any more (released), or a bad SendAt", not_found="ErrorCode 701: no such message"
)


@router.delete("/messages/outbound/{message_id}/schedule", response_model=ScheduleResult, responses=ERRORS)
async def cancel_schedule(message_id: str, server: CurrentServer, session: Session) -> ScheduleResult:
    """Beyond Postmark: cancel a scheduled message that has not been released; it never leaves."""
    message = await service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    await queue.cancel_scheduled(session=session, message=message)
    return ScheduleResult(Message="Cancelled.", MessageID=str(message.id), Status=MessageStatus.CANCELLED.value)


@router.put("/messages/outbound/{message_id}/schedule", response_model=ScheduleResult, responses=ERRORS)
async def reschedule(message_id: str, body: Annotated[ScheduleRequest, Body()], server: CurrentServer, session: Session) -> ScheduleResult:
    """Beyond Postmark: move a scheduled message's release (`SendAt`, at most 30 days ahead; a past time sends now)."""
    if body.SendAt is None or not body.SendAt.strip():
        raise InvalidEmailRequest("'SendAt' is required.")
    send_at = parse_send_at(body.SendAt)
    now = datetime.now(UTC)
    if send_at > now + timedelta(days=MAX_SCHEDULE_DAYS):
        raise InvalidEmailRequest(f"'SendAt' is more than {MAX_SCHEDULE_DAYS} days ahead.")
    message = await service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    await queue.reschedule(session=session, message=message, send_at=send_at, now=now)
    return ScheduleResult(
        Message="Rescheduled.", MessageID=str(message.id), Status=MessageStatus.SCHEDULED.value, SendAt=format_timestamp(send_at)
    )
