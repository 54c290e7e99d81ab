from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Suppression
from shared.constants import SuppressionOrigin, SuppressionReason


async def dump(
    *,
    session: AsyncSession,
    server_id: int,
    stream: str,
    reason: str | None,
    origin: str | None,
    email: str | None,
    from_date: datetime | None,
    to_date: datetime | None,
) -> list[Suppression]:
    stmt = select(Suppression).where(Suppression.server_id == server_id, Suppression.message_stream == stream)
    if reason:
        stmt = stmt.where(Suppression.reason == reason)
    if origin:
        stmt = stmt.where(Suppression.origin == origin)
    if email:
        stmt = stmt.where(Suppression.email == email.lower())
    if from_date:
        stmt = stmt.where(Suppression.created_at >= from_date)
    if to_date:
        stmt = stmt.where(Suppression.created_at < to_date)
    return list((await session.execute(stmt.order_by(Suppression.created_at.desc(), Suppression.id))).scalars().all())


async def get(*, session: AsyncSession, server_id: int, stream: str, email: str) -> Suppression | None:
    stmt = select(Suppression).where(
        Suppression.server_id == server_id, Suppression.message_stream == stream, Suppression.email == email.lower()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add(
    *, session: AsyncSession, server_id: int, stream: str, email: str, reason: SuppressionReason, origin: SuppressionOrigin
) -> bool:
    stmt = (
        pg_insert(Suppression)
        .values(server_id=server_id, message_stream=stream, email=email.lower(), reason=reason, origin=origin)
        .on_conflict_do_nothing(constraint="uq_suppressions_recipient")
        .returning(Suppression.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def remove(*, session: AsyncSession, server_id: int, stream: str, email: str) -> None:
    await session.execute(
        delete(Suppression).where(
            Suppression.server_id == server_id, Suppression.message_stream == stream, Suppression.email == email.lower()
        )
    )


async def delete_for_email(*, session: AsyncSession, email: str) -> int:
    """Every suppression of the (lower-cased) address, on every server and stream."""
    return len((await session.execute(delete(Suppression).where(Suppression.email == email).returning(Suppression.id))).all())
