from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import MessageStream, Server
from shared.constants import StreamType


async def list_streams(*, session: AsyncSession, server_id: int, stream_type: str | None, include_archived: bool) -> list[MessageStream]:
    stmt = select(MessageStream).where(MessageStream.server_id == server_id)
    if stream_type:
        stmt = stmt.where(MessageStream.stream_type == stream_type)
    if not include_archived:
        stmt = stmt.where(MessageStream.archived_at.is_(None))
    return list((await session.execute(stmt.order_by(MessageStream.created_at, MessageStream.stream_id))).scalars().all())


async def get_stream(*, session: AsyncSession, server_id: int, stream_id: str, for_update: bool = False) -> MessageStream | None:
    stmt = select(MessageStream).where(MessageStream.server_id == server_id, MessageStream.stream_id == stream_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_streams(*, session: AsyncSession, server_id: int) -> tuple[int, int]:
    """(streams, inbound streams) of the server, archived ones included."""
    stmt = select(func.count(), func.count().filter(MessageStream.stream_type == StreamType.INBOUND)).where(
        MessageStream.server_id == server_id
    )
    total, inbound = (await session.execute(stmt)).one()
    return int(total), int(inbound)


async def lock_server(*, session: AsyncSession, server_id: int) -> None:
    """Lock the server's row: stream creations of one server take turns (the limit of ten is
    counted inside the lock). A lock, not a read: the servers package owns that table."""
    await session.execute(select(Server.id).where(Server.id == server_id).with_for_update())


async def add_streams(*, session: AsyncSession, streams: list[MessageStream]) -> None:
    session.add_all(streams)
    await session.flush()
