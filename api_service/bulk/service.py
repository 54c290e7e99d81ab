"""The Bulk API: one request, one shared content (or a stored template), many recipients.

`submit` checks the request as Postmark does (the shared part, the stream, the sender, the template, every entry's
addresses, Metadata and Headers; one problem → its own ErrorCode, several → ErrorCode 11 with `Errors`), stores
it with its entries and answers at once: nothing is rendered and no message exists yet. `expand_next` (run by the
worker, `tasks.py`) turns the next bounded batch of entries into messages through intake's unit of work (`email.intake`, the same `accept`)
as every other entry point, counting each entry as released (accepted, even with some recipients suppressed) or
failed (every recipient suppressed, a model that does not render, a template deleted since, …), in the same
transaction as the messages it created.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bulk import expand, repository
from api_service.core.offload import cpu_bound
from api_service.email import intake
from api_service.email import service as email
from api_service.email.message import OutgoingMessage
from api_service.errors import InvalidEmailRequest, MultipleErrors, NotFound, PostmarkError
from api_service.models import BulkRequest
from api_service.servers import service as servers
from api_service.streams import service as streams
from api_service.templates import service as templates
from api_service.templates.budget import Budget, run_budgeted
from shared.constants import MAX_BULK_ENTRIES, MAX_BULK_TEST_ENTRIES, BulkStatus, ErrorCode, StreamType, TemplateType
from shared.schemas.base import format_timestamp
from shared.schemas.bulk import BulkEmailRequest, BulkMessage, BulkStatusList, BulkStatusResponse

# Errors listed in an ErrorCode 11 answer: enough to fix a list, never a response the size of the request.
MAX_LISTED_ERRORS = 100
# Submit-time checks of more entries than this run in a thread, so a large request does not stall the API's loop.
THREADED_CHECK_ENTRIES = 1000
# Read shared parts kept per worker process (their attachments decoded); a request's content never changes.
SHARED_CACHE_ENTRIES = 8


def not_found() -> PostmarkError:
    return NotFound(ErrorCode.BULK_NOT_FOUND, "The bulk request was not found.")


def status_of(row: BulkRequest) -> BulkStatusResponse:
    done = row.released + row.failed
    return BulkStatusResponse(
        Id=str(row.id),
        SubmittedAt=format_timestamp(row.created_at),
        Status=row.status,
        TotalMessages=row.total,
        PercentageCompleted=round(100 * done / row.total, 2) if row.total else 100.0,
        ReleasedCount=row.released,
        FailedCount=row.failed,
        Subject=row.subject or "",
    )


# --- submit -------------------------------------------------------------------------------------------------


def entry_problems(shared: expand.Shared, entries: list[BulkMessage]) -> dict[str, list[PostmarkError]]:
    """Each entry's own problem, by `Messages[i]`; at most MAX_LISTED_ERRORS of them."""
    problems: dict[str, list[PostmarkError]] = {}
    for index, entry in enumerate(entries):
        problem = expand.entry_problem(shared, entry)
        if problem is not None:
            problems[f"Messages[{index}]"] = [problem]
            if len(problems) >= MAX_LISTED_ERRORS:
                break
    return problems


async def _check_entries(shared: expand.Shared, entries: list[BulkMessage]) -> None:
    if len(entries) > THREADED_CHECK_ENTRIES:
        problems = await asyncio.to_thread(entry_problems, shared, entries)
    else:
        problems = entry_problems(shared, entries)
    if len(problems) == 1:
        [[problem]] = problems.values()
        raise problem
    if problems:
        raise MultipleErrors(problems)


def too_many_entries(count: int, *, test: bool) -> PostmarkError | None:
    """ErrorCode 410 past the entry cap: `MAX_BULK_ENTRIES`, or `MAX_BULK_TEST_ENTRIES` for the test token."""
    cap = MAX_BULK_TEST_ENTRIES if test else MAX_BULK_ENTRIES
    if count <= cap:
        return None
    if test:
        message = f"The test token POSTMARK_API_TEST previews bulk requests of at most {cap:,} entries ('Messages' has {count:,})."
    else:
        message = f"A bulk request may have at most {cap:,} entries ('Messages' has {count:,}): split the list into several requests."
    return PostmarkError(ErrorCode.TOO_MANY_BATCH_MESSAGES, message)


async def read(request: BulkEmailRequest, *, test: bool = False) -> tuple[expand.Shared, list[BulkMessage]]:
    """The checks that need nothing but the request (also all the `POSTMARK_API_TEST` token's).

    The entry cap first; the shared content is parsed in a thread when it is large.
    """
    entries = request.Messages or []
    if not entries:
        raise InvalidEmailRequest("A bulk request needs at least one entry in 'Messages'.")
    problem = too_many_entries(len(entries), test=test)
    if problem is not None:
        raise problem
    size = sum(len(getattr(request, name) or "") for name in expand.CONTENT_FIELDS)
    size += sum(len(a.Content or "") for a in request.Attachments or [])
    return await cpu_bound(size, expand.read_shared, request), entries


async def preview(*, request: BulkEmailRequest) -> BulkStatusResponse:
    """`POSTMARK_API_TEST`: every check that needs no account; nothing is stored or sent."""
    shared, entries = await read(request, test=True)
    await _check_entries(shared, entries)
    return BulkStatusResponse(
        Id=str(uuid.uuid4()),
        SubmittedAt=format_timestamp(datetime.now(UTC)),
        Status=BulkStatus.ACCEPTED.value,
        TotalMessages=len(entries),
        PercentageCompleted=0.0,
        ReleasedCount=0,
        FailedCount=0,
        Subject=request.Subject or "",
    )


async def _check_account(*, session: AsyncSession, server_id: int, shared: expand.Shared) -> str | None:
    """The stream (Broadcasts only, as Postmark), the sender and the template; returns the Subject to report."""
    stream_id = shared.probe.message_stream
    stream = await streams.get_stream(session=session, server_id=server_id, stream_id=stream_id)
    if stream is not None and stream.archived_at is None and stream.stream_type != StreamType.BROADCASTS:
        raise PostmarkError(
            ErrorCode.STREAM_NOT_SENDABLE,
            f"The Bulk API sends on Broadcasts streams only; '{stream_id}' is a {stream.stream_type} stream.",
        )
    problems = await email.account_problems(session=session, server_id=server_id, message=shared.probe)
    if problems:
        raise problems[0]
    if not shared.templated:
        return shared.content.subject if shared.content is not None else None
    id_or_alias = str(shared.template_id) if shared.template_id is not None else (shared.template_alias or "")
    try:
        stored = await templates.get_template_or_raise(session=session, server_id=server_id, id_or_alias=id_or_alias)
    except NotFound:
        stored = None
    if stored is None or stored.row.template_type != TemplateType.STANDARD:
        raise templates.template_not_found(template_id=shared.template_id, alias=shared.template_alias)
    return stored.row.subject


def _entries_json(entries: list[BulkMessage]) -> str:
    """The entries as stored (a JSON array); up to 50 MB of them take ~0.4 s, so in a thread when many."""
    return orjson.dumps([e.model_dump(mode="json", exclude_none=True) for e in entries]).decode()


async def submit(
    *, session: AsyncSession, server_id: int, request: BulkEmailRequest, idempotency: email.Idempotency | None = None
) -> BulkStatusResponse | email.Replay:
    """Check and store a bulk request with its entries; nothing is expanded here. A repeated `Idempotency-Key` replays."""
    shared, entries = await read(request)
    replay = await email.begin_idempotent(session=session, server_id=server_id, idempotency=idempotency)
    if replay is not None:
        return replay
    subject = await _check_account(session=session, server_id=server_id, shared=shared)
    await _check_entries(shared, entries)
    now = datetime.now(UTC)
    row = BulkRequest(
        id=uuid.uuid4(),
        server_id=server_id,
        status=BulkStatus.ACCEPTED,
        message_stream=shared.probe.message_stream,
        subject=subject,
        content=request.model_dump(mode="json", exclude={"Messages"}, exclude_none=True),
        total=len(entries),
        position=0,
        released=0,
        failed=0,
        progressed_at=now,
        created_at=now,
    )
    entries_json = await cpu_bound(len(entries) * 1024, _entries_json, entries)
    await repository.add_request(session=session, request=row, entries_json=entries_json)
    status = status_of(row)
    await email.finish_idempotent(session=session, server_id=server_id, idempotency=idempotency, body=status.model_dump(exclude_none=True))
    return status


# --- status -------------------------------------------------------------------------------------------------


async def get_status(*, session: AsyncSession, server_id: int, request_id: str) -> BulkStatusResponse:
    """A request of this server, by Id; any other Id (another server's, or not an Id at all) is not found (12)."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        raise not_found() from None
    row = await repository.get_request(session=session, server_id=server_id, request_id=parsed)
    if row is None:
        raise not_found()
    return status_of(row)


def encode_pagination_key(row: BulkRequest) -> str:
    raw = orjson.dumps([row.created_at.isoformat(), str(row.id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_pagination_key(key: str) -> tuple[datetime, uuid.UUID]:
    try:
        created_at, request_id = orjson.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
        parsed = datetime.fromisoformat(created_at), uuid.UUID(request_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise PostmarkError(ErrorCode.BULK_PAGINATION_KEY_INVALID, "The 'PaginationKey' is not valid.") from None
    if parsed[0].tzinfo is None:
        raise PostmarkError(ErrorCode.BULK_PAGINATION_KEY_INVALID, "The 'PaginationKey' is not valid.")
    return parsed


async def list_statuses(*, session: AsyncSession, server_id: int, count: int, pagination_key: str | None) -> BulkStatusList:
    """This server's requests, newest first, a page at a time; `PaginationKey` is absent on the last page."""
    before = decode_pagination_key(pagination_key) if pagination_key else None
    rows = await repository.list_requests(session=session, server_id=server_id, count=count + 1, before=before)
    page, more = rows[:count], len(rows) > count
    return BulkStatusList(Requests=[status_of(r) for r in page], PaginationKey=encode_pagination_key(page[-1]) if more else None)


# --- expansion (the worker) ---------------------------------------------------------------------------------


_SHARED: OrderedDict[uuid.UUID, expand.Shared] = OrderedDict()


async def _shared_for(*, session: AsyncSession, request_id: uuid.UUID) -> expand.Shared:
    shared = _SHARED.get(request_id)
    if shared is None:
        content = await repository.get_content(session=session, request_id=request_id)
        shared = expand.read_shared(BulkEmailRequest.model_validate(content))
        _SHARED[request_id] = shared
        while len(_SHARED) > SHARED_CACHE_ENTRIES:
            _SHARED.popitem(last=False)
    _SHARED.move_to_end(request_id)
    return shared


def expand_batch(shared: expand.Shared, entries: list[Any], budget: Budget) -> list[OutgoingMessage | PostmarkError]:
    """Each entry's message, or why it cannot be sent; one budgeted step (on the loop when small, else in a thread)."""
    items: list[OutgoingMessage | PostmarkError] = []
    for raw in entries:
        try:
            items.append(expand.expand(shared, BulkMessage.model_validate(raw), budget=budget.for_message()))
        except PostmarkError as exc:
            items.append(exc)
    return items


async def expand_next(*, session: AsyncSession, batch_size: int, message_id_domain: str = "") -> int:
    """Expand the next batch of the least recently served unfinished request; returns how many entries it took.

    Everything happens in the caller's one transaction: the request's row lock (taken with SKIP LOCKED, so workers
    share requests without waiting), the messages `accept` stores, and the cursor. A worker killed mid-batch
    commits none of it; the lock goes with its connection and the batch is done again by the next worker.
    """
    claimed = await repository.claim_next(session=session)
    if claimed is None:
        return 0
    now = datetime.now(UTC)
    entries = await repository.next_entries(session=session, request_id=claimed.id, after=claimed.position, limit=batch_size)
    server = (await servers.get_servers(session=session, ids={claimed.server_id})).get(claimed.server_id)
    if not entries or server is None:  # nothing left to expand: whatever was not counted cannot be sent
        await repository.advance(
            session=session,
            request_id=claimed.id,
            position=claimed.total,
            released=0,
            failed=claimed.total - claimed.position,
            done=True,
            at=now,
        )
        return 1
    shared = await _shared_for(session=session, request_id=claimed.id)
    items = await run_budgeted(partial(expand_batch, shared, [raw for _, raw in entries]))
    # Intake's unit of work in this transaction: the cursor and the row lock commit with the messages.
    sent = await intake.accept_in(
        session=session, send=intake.Send(server=server, items=items, policy=email.Policy.REJECT), message_id_domain=message_id_domain
    )
    results = sent.outcomes
    released = sum(isinstance(r, email.Accepted) for r in results)
    last = entries[-1][0]
    await repository.advance(
        session=session,
        request_id=claimed.id,
        position=last,
        released=released,
        failed=len(results) - released,
        done=last >= claimed.total,
        at=now,
    )
    return len(entries)


async def purge_completed(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Retention: one batch of the server's completed bulk requests older than `days`."""
    return await repository.delete_completed(session=session, server_id=server_id, days=days, limit=limit)
