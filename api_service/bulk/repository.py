"""SQL for the Bulk API: the requests, their entries, and the worker's claim of the next batch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import BulkEntry, BulkRequest
from shared.constants import BulkStatus


async def add_request(*, session: AsyncSession, request: BulkRequest, entries_json: str) -> None:
    """The request row, and one entry row per element of the JSON array `entries_json` (1-based positions).

    The array is split into rows by PostgreSQL in one statement, so a request of many thousands of entries costs
    one round trip and no Python work per entry.
    """
    session.add(request)
    await session.flush()
    await session.execute(
        text(
            "INSERT INTO bulk_entries (bulk_request_id, position, entry) "
            "SELECT :id, ordinality, value FROM jsonb_array_elements(CAST(:entries AS jsonb)) WITH ORDINALITY"
        ),
        {"id": request.id, "entries": entries_json},
    )


async def get_request(*, session: AsyncSession, server_id: int, request_id: uuid.UUID) -> BulkRequest | None:
    stmt = select(BulkRequest).where(BulkRequest.id == request_id, BulkRequest.server_id == server_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_requests(
    *, session: AsyncSession, server_id: int, count: int, before: tuple[datetime, uuid.UUID] | None
) -> list[BulkRequest]:
    """Newest first; `before` is the (created_at, id) of the last request of the previous page."""
    stmt = select(BulkRequest).where(BulkRequest.server_id == server_id)
    if before is not None:
        stmt = stmt.where(tuple_(BulkRequest.created_at, BulkRequest.id) < tuple_(*before))
    stmt = stmt.order_by(BulkRequest.created_at.desc(), BulkRequest.id.desc()).limit(count)
    return list((await session.execute(stmt)).scalars().all())


@dataclass(frozen=True, slots=True)
class Claimed:
    """A bulk request locked by this transaction, without its (possibly large) content."""

    id: uuid.UUID
    server_id: int
    total: int
    position: int


# Row-locked, not leased: a batch is all database work, done inside this transaction, so the lock lasts exactly
# as long as the batch, and PostgreSQL releases it when a killed worker's connection goes (see service.expand_next).
CLAIM = text(
    """
    SELECT id, server_id, total, position FROM bulk_requests
     WHERE status <> 'Completed'
     ORDER BY progressed_at
     LIMIT 1
     FOR UPDATE SKIP LOCKED
    """
)


async def claim_next(*, session: AsyncSession) -> Claimed | None:
    """The least recently served unfinished request that no other worker holds, locked until the transaction ends."""
    row = (await session.execute(CLAIM)).one_or_none()
    return None if row is None else Claimed(*row)


async def get_content(*, session: AsyncSession, request_id: uuid.UUID) -> dict[str, Any]:
    content: dict[str, Any] = (await session.execute(select(BulkRequest.content).where(BulkRequest.id == request_id))).scalar_one()
    return content


async def next_entries(*, session: AsyncSession, request_id: uuid.UUID, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    stmt = (
        select(BulkEntry.position, BulkEntry.entry)
        .where(BulkEntry.bulk_request_id == request_id, BulkEntry.position > after)
        .order_by(BulkEntry.position)
        .limit(limit)
    )
    return [(position, entry) for position, entry in (await session.execute(stmt)).all()]


async def advance(
    *, session: AsyncSession, request_id: uuid.UUID, position: int, released: int, failed: int, done: bool, at: datetime
) -> None:
    """Move the cursor past a batch: count it, drop its entries, and finish the request after its last entry."""
    await session.execute(delete(BulkEntry).where(BulkEntry.bulk_request_id == request_id, BulkEntry.position <= position))
    await session.execute(
        update(BulkRequest)
        .where(BulkRequest.id == request_id)
        .values(
            position=position,
            released=BulkRequest.released + released,
            failed=BulkRequest.failed + failed,
            status=(BulkStatus.COMPLETED if done else BulkStatus.PROCESSING).value,
            progressed_at=at,
            completed_at=at if done else None,
        )
    )


# --- retention -----------------------------------------------------------------------------------

DELETE_COMPLETED = text(
    """
    DELETE FROM bulk_requests WHERE id IN (
        SELECT id FROM bulk_requests
         WHERE server_id = :server_id AND status = :completed AND created_at < now() - make_interval(days => :days)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


async def delete_completed(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Up to `limit` of the server's completed bulk requests older than `days`; unfinished ones stay."""
    params = {"server_id": server_id, "days": days, "limit": limit, "completed": BulkStatus.COMPLETED.value}
    result = cast(CursorResult[Any], await session.execute(DELETE_COMPLETED, params))
    return int(result.rowcount)
