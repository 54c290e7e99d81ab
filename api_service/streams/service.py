"""Message stream rules: IDs, names, types, the limit of ten, archiving, unsubscribe handling.

This package is the only writer and the only reader of `message_streams`: a new server's default
streams are made by `create_default_streams`, called from the servers service, and other packages
look streams up through `get_stream` and `list_streams`. It imports nothing of `servers/` (whose
service calls this one); only its router takes the authenticated server from `servers.deps`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import PostmarkError
from api_service.models import MessageStream
from api_service.streams import repository
from shared.constants import ErrorCode, StreamType, UnsubscribeHandlingType
from shared.schemas.streams import StreamCreate, StreamEdit, SubscriptionConfig

log = logging.getLogger("postgate.streams")

MAX_STREAMS = 10
MAX_NAME = 100
MAX_DESCRIPTION = 1000
PURGE_AFTER = timedelta(days=45)
STREAM_ID = re.compile(r"^[a-z][a-z0-9_-]{0,29}$")
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")
# Names that would read as something else in the API or the UI.
RESERVED_IDS = frozenset({"all", "none", "default", "transactional", "broadcasts", "outbound-default"})
DEFAULT_STREAMS = (
    ("outbound", "Default Transactional Stream", StreamType.TRANSACTIONAL),
    ("inbound", "Default Inbound Stream", StreamType.INBOUND),
    ("broadcast", "Default Broadcast Stream", StreamType.BROADCASTS),
)
UNARCHIVABLE = frozenset({"outbound", "inbound"})


def not_found() -> PostmarkError:
    return PostmarkError(ErrorCode.STREAM_NOT_FOUND_BY_ID, "The message stream for the provided 'ID' was not found.")


def expected_purge_date(stream: MessageStream) -> datetime | None:
    return stream.archived_at + PURGE_AFTER if stream.archived_at else None


def default_handling(stream_type: StreamType) -> UnsubscribeHandlingType:
    return UnsubscribeHandlingType.POSTMARK if stream_type is StreamType.BROADCASTS else UnsubscribeHandlingType.NONE


async def create_default_streams(*, session: AsyncSession, server_id: int) -> None:
    """`outbound` (Transactional), `inbound` (Inbound) and `broadcast` (Broadcasts), as every
    Postmark server starts with. Lists show streams by creation time, so the three get distinct,
    ordered times (two clock readings in a row can be equal)."""
    now = datetime.now(UTC)
    await repository.add_streams(
        session=session,
        streams=[
            MessageStream(
                server_id=server_id,
                stream_id=stream_id,
                name=name,
                description="",
                stream_type=stream_type.value,
                unsubscribe_handling=default_handling(stream_type).value,
                created_at=now + timedelta(microseconds=index),
            )
            for index, (stream_id, name, stream_type) in enumerate(DEFAULT_STREAMS)
        ],
    )


def parse_type_filter(value: str | None) -> StreamType | None:
    """`MessageStreamType` of the list call: All (None) or one type."""
    if value is None or value.strip().lower() in ("", "all"):
        return None
    found = next((t for t in StreamType if t.value.lower() == value.strip().lower()), None)
    if found is None:
        raise PostmarkError(ErrorCode.STREAM_TYPE_INVALID, "The 'MessageStreamType' associated with this request was invalid.")
    return found


async def list_streams(
    *, session: AsyncSession, server_id: int, stream_type: StreamType | None, include_archived: bool
) -> list[MessageStream]:
    return await repository.list_streams(
        session=session, server_id=server_id, stream_type=stream_type.value if stream_type else None, include_archived=include_archived
    )


async def get_stream(*, session: AsyncSession, server_id: int, stream_id: str) -> MessageStream | None:
    return await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id.lower())


async def get_stream_or_raise(*, session: AsyncSession, server_id: int, stream_id: str) -> MessageStream:
    stream = await get_stream(session=session, server_id=server_id, stream_id=stream_id)
    if stream is None:
        raise not_found()
    return stream


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if not name or "\x00" in name:
        raise PostmarkError(ErrorCode.STREAM_NAME_REQUIRED, "A valid 'Name' must be provided.")
    if len(name) > MAX_NAME:
        raise PostmarkError(ErrorCode.STREAM_NAME_TOO_LONG, f"The 'Name' is too long (at most {MAX_NAME} characters).")
    return name


def _description(value: str | None) -> str:
    description = (value or "").replace("\x00", "")
    if len(description) > MAX_DESCRIPTION:
        raise PostmarkError(ErrorCode.STREAM_DESCRIPTION_TOO_LONG, f"The 'Description' is too long (at most {MAX_DESCRIPTION} characters).")
    if HTML_TAG.search(description):
        raise PostmarkError(ErrorCode.STREAM_DESCRIPTION_HTML, "The 'Description' must not contain HTML tags.")
    return description


def _stream_id(value: str | None) -> str:
    stream_id = (value or "").strip()
    if not stream_id:
        raise PostmarkError(ErrorCode.STREAM_ID_REQUIRED, "A valid 'ID' must be provided.")
    if stream_id.lower().startswith("pm-"):
        raise PostmarkError(ErrorCode.STREAM_ID_PM_PREFIX, "The 'ID' must not start with the 'pm-' prefix.")
    if not STREAM_ID.match(stream_id):
        raise PostmarkError(
            ErrorCode.STREAM_ID_INVALID,
            "The 'ID' must start with a letter and hold only lower-case letters, digits, '_' and '-', up to 30 characters.",
        )
    if stream_id in RESERVED_IDS:
        raise PostmarkError(ErrorCode.STREAM_ID_RESERVED, f"The 'ID' '{stream_id}' is reserved.")
    return stream_id


def _handling(config: SubscriptionConfig | None, stream_type: StreamType) -> UnsubscribeHandlingType | None:
    """The requested unsubscribe handling, checked against the stream type; None when not given.

    Transactional and inbound streams take only None; Broadcasts take Postmark (Postgate adds
    the unsubscribe link and headers) or Custom (the sender handles unsubscribes itself).
    """
    if config is None or config.UnsubscribeHandlingType is None:
        return None
    value = config.UnsubscribeHandlingType.strip().lower()
    found = next((h for h in UnsubscribeHandlingType if h.value.lower() == value), None)
    if found is None:
        raise PostmarkError(ErrorCode.STREAM_UNSUBSCRIBE_INVALID, "The 'UnsubscribeHandlingType' associated with this request is invalid.")
    allowed = (
        {UnsubscribeHandlingType.POSTMARK, UnsubscribeHandlingType.CUSTOM}
        if stream_type is StreamType.BROADCASTS
        else {UnsubscribeHandlingType.NONE}
    )
    if found not in allowed:
        raise PostmarkError(
            ErrorCode.STREAM_UNSUBSCRIBE_NOT_SUPPORTED, "The 'UnsubscribeHandlingType' provided is not supported for this stream type."
        )
    return found


async def create_stream(*, session: AsyncSession, server_id: int, data: StreamCreate) -> MessageStream:
    stream_id = _stream_id(data.ID)
    name = _name(data.Name)
    requested = (data.MessageStreamType or "").strip().lower()
    stream_type = next((t for t in StreamType if t.value.lower() == requested), None)
    if stream_type is None:
        raise PostmarkError(ErrorCode.STREAM_TYPE_INVALID, "The 'MessageStreamType' associated with this request was invalid.")
    if stream_type is StreamType.INBOUND:
        raise PostmarkError(ErrorCode.STREAM_ONE_INBOUND, "A server can only have one inbound stream.")
    description = _description(data.Description)
    handling = _handling(data.SubscriptionManagementConfiguration, stream_type) or default_handling(stream_type)
    # The server row lock serialises creations, so two at once cannot both take the tenth place.
    await repository.lock_server(session=session, server_id=server_id)
    if await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id) is not None:
        raise PostmarkError(ErrorCode.STREAM_ID_EXISTS, "The 'ID' provided already exists for this server.")
    total, _ = await repository.count_streams(session=session, server_id=server_id)
    if total >= MAX_STREAMS:
        raise PostmarkError(
            ErrorCode.STREAM_LIMIT_REACHED, f"You have reached the maximum number of message streams ({MAX_STREAMS}) for this server."
        )
    stream = MessageStream(
        server_id=server_id,
        stream_id=stream_id,
        name=name,
        description=description,
        stream_type=stream_type.value,
        unsubscribe_handling=handling.value,
        created_at=datetime.now(UTC),
    )
    await repository.add_streams(session=session, streams=[stream])
    return stream


async def edit_stream(*, session: AsyncSession, server_id: int, stream_id: str, data: StreamEdit) -> MessageStream:
    stream = await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id.lower(), for_update=True)
    if stream is None:
        raise not_found()
    if data.Name is not None:
        stream.name = _name(data.Name)
    if data.Description is not None:
        stream.description = _description(data.Description)
    handling = _handling(data.SubscriptionManagementConfiguration, StreamType(stream.stream_type))
    if handling is not None:
        stream.unsubscribe_handling = handling.value
    if data.PauseOnComplaints is not None:
        stream.pause_on_complaints = data.PauseOnComplaints
    if data.Paused is False:
        stream.paused_at, stream.paused_reason = None, ""
    elif data.Paused and stream.paused_at is None:
        stream.paused_at, stream.paused_reason = datetime.now(UTC), "Paused by request"
    stream.updated_at = datetime.now(UTC)
    await session.flush()
    return stream


async def archive_stream(*, session: AsyncSession, server_id: int, stream_id: str) -> tuple[MessageStream, datetime]:
    """Archived streams refuse mail; Postmark purges them 45 days later (Postgate keeps them).
    Returns the stream and its expected purge date."""
    stream = await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id.lower(), for_update=True)
    if stream is None:
        raise not_found()
    if stream.stream_id in UNARCHIVABLE:
        raise PostmarkError(ErrorCode.STREAM_DEFAULT_CANNOT_ARCHIVE, "You cannot archive the default transactional and inbound streams.")
    archived_at = stream.archived_at or datetime.now(UTC)
    if stream.archived_at is None:
        stream.archived_at = stream.updated_at = archived_at
        await session.flush()
    return stream, archived_at + PURGE_AFTER


async def unarchive_stream(*, session: AsyncSession, server_id: int, stream_id: str) -> MessageStream:
    stream = await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id.lower(), for_update=True)
    if stream is None:
        raise not_found()
    purge = expected_purge_date(stream)
    if purge is not None and purge <= datetime.now(UTC):
        raise PostmarkError(ErrorCode.STREAM_CANNOT_UNARCHIVE, "You cannot unarchive this message stream anymore.")
    if stream.archived_at is not None:
        stream.archived_at = None
        stream.updated_at = datetime.now(UTC)
        await session.flush()
    return stream


# --- paused on spam complaints ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComplaintLine:
    """When a stream's complaints pause it: COMPLAINT_PAUSE_RATE of its recipients over the last
    `days`, once it had COMPLAINT_PAUSE_MIN_SENT (a handful of messages says nothing about a rate)."""

    rate: float
    min_sent: int
    days: int = 7


def complaint_reason(*, complaints: int, sent: int, line: ComplaintLine) -> str | None:
    """Why a stream with these counts is paused, or None when it is not."""
    if sent < line.min_sent or complaints <= line.rate * sent:
        return None
    return (
        f"Spam complaint rate {complaints / sent:.2%} ({complaints} of {sent} recipients in the last {line.days} days) "
        f"is above {line.rate:.2%}; mailbox providers block senders past that line"
    )


async def pause_for_complaints(
    *, session: AsyncSession, server_id: int, stream_id: str, complaints: int, sent: int, line: ComplaintLine
) -> MessageStream | None:
    """Pause the stream when its complaint rate passes the line (unless its PauseOnComplaints is off,
    or it is paused already); the stream when it was paused now, else None."""
    reason = complaint_reason(complaints=complaints, sent=sent, line=line)
    if reason is None:
        return None
    stream = await repository.get_stream(session=session, server_id=server_id, stream_id=stream_id, for_update=True)
    if stream is None or not stream.pause_on_complaints or stream.paused_at is not None:
        return None
    stream.paused_at, stream.paused_reason = datetime.now(UTC), reason
    await session.flush()
    log.warning("server %s: message stream %r paused: %s", server_id, stream_id, reason)
    return stream
