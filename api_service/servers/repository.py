from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.listing import page_of
from api_service.models import RetiredTrackingKey, Server, ServerToken


async def get_server_by_token_digest(*, session: AsyncSession, digest: str) -> Server | None:
    stmt = select(Server).join(ServerToken, ServerToken.server_id == Server.id).where(ServerToken.token_sha256 == digest)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_servers_by_token_digests(*, session: AsyncSession, digests: set[str]) -> dict[str, Server]:
    stmt = (
        select(ServerToken.token_sha256, Server)
        .join(Server, ServerToken.server_id == Server.id)
        .where(ServerToken.token_sha256.in_(digests))
    )
    return {row[0]: row[1] for row in await session.execute(stmt)}


async def get_server(*, session: AsyncSession, server_id: int, for_update: bool = False) -> Server | None:
    stmt = select(Server).where(Server.id == server_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_server_by_name(*, session: AsyncSession, name: str) -> Server | None:
    return (await session.execute(select(Server).where(func.lower(Server.name) == name.lower()))).scalar_one_or_none()


async def get_server_by_inbound_domain(*, session: AsyncSession, domain: str) -> Server | None:
    stmt = select(Server).where(Server.inbound_domain == domain).order_by(Server.id).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_servers(*, session: AsyncSession, count: int, offset: int, name: str | None) -> tuple[int, list[Server]]:
    filters = [Server.name.icontains(name, autoescape=True) if name else None]
    return await page_of(session=session, stmt=select(Server), filters=filters, order_by=[Server.id], count=count, offset=offset)


async def token_hints(*, session: AsyncSession, server_ids: list[int]) -> dict[int, list[str]]:
    stmt = select(ServerToken.server_id, ServerToken.hint).where(ServerToken.server_id.in_(server_ids)).order_by(ServerToken.id)
    hints: dict[int, list[str]] = {sid: [] for sid in server_ids}
    for server_id, hint in (await session.execute(stmt)).all():
        hints[server_id].append(hint)
    return hints


async def add_server(*, session: AsyncSession, server: Server, token_digest: str, token_hint: str) -> Server:
    session.add(server)
    await session.flush()
    session.add(ServerToken(server_id=server.id, token_sha256=token_digest, hint=token_hint))
    await session.flush()
    return server


async def delete_server(*, session: AsyncSession, server: Server) -> None:
    # The tracking secret outlives the server: the links of the mail it sent keep opening.
    retire = insert(RetiredTrackingKey).values(server_id=server.id, tracking_secret=server.tracking_secret, retired_at=datetime.now(UTC))
    await session.execute(
        retire.on_conflict_do_update(index_elements=["server_id"], set_={"tracking_secret": retire.excluded.tracking_secret})
    )
    await session.delete(server)
    await session.flush()


async def retired_tracking_secret(*, session: AsyncSession, server_id: int) -> str | None:
    stmt = select(RetiredTrackingKey.tracking_secret).where(RetiredTrackingKey.server_id == server_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_servers(*, session: AsyncSession, ids: set[int]) -> dict[int, Server]:
    rows = (await session.execute(select(Server).where(Server.id.in_(ids)))).scalars().all()
    return {s.id: s for s in rows}


async def retention_days(*, session: AsyncSession) -> list[tuple[int, int | None]]:
    """Every server's id and its own retention in days (None: the global default)."""
    rows = (await session.execute(select(Server.id, Server.retention_days).order_by(Server.id))).all()
    return [(server_id, days) for server_id, days in rows]
