from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.listing import page_of
from api_service.models import AccountToken, RetiredTrackingKey, Server, ServerToken

# Channel on which a revocation is announced to every API process (they drop their token caches).
REVOKED_CHANNEL = "postgate_token_revoked"
# A token's last use is written at most this often: a lookup that finds it fresher writes nothing.
LAST_USED_EVERY = timedelta(minutes=1)


async def get_server_and_token_by_digest(*, session: AsyncSession, digest: str) -> tuple[Server, ServerToken] | None:
    """The server and its token of this digest, unless the token expired."""
    stmt = (
        select(Server, ServerToken)
        .join(ServerToken, ServerToken.server_id == Server.id)
        .where(ServerToken.token_sha256 == digest, or_(ServerToken.expires_at.is_(None), ServerToken.expires_at > func.now()))
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


async def get_servers_by_token_digests(*, session: AsyncSession, digests: set[str]) -> dict[str, tuple[Server, ServerToken]]:
    stmt = (
        select(Server, ServerToken)
        .join(Server, ServerToken.server_id == Server.id)
        .where(ServerToken.token_sha256.in_(digests), or_(ServerToken.expires_at.is_(None), ServerToken.expires_at > func.now()))
    )
    return {token.token_sha256: (server, token) for server, token in (await session.execute(stmt)).all()}


async def touch_server_tokens(*, session: AsyncSession, ids: list[int], ip: str | None) -> None:
    """Record a use, unless one was recorded within LAST_USED_EVERY; rows another transaction holds
    are skipped rather than waited for (a last-used time is a hint, never worth a lock wait)."""
    stale = (
        select(ServerToken.id)
        .where(
            ServerToken.id.in_(ids),
            or_(ServerToken.last_used_at.is_(None), ServerToken.last_used_at < func.now() - LAST_USED_EVERY),
        )
        .with_for_update(skip_locked=True)
    )
    values: dict[str, object] = {"last_used_at": func.now()}
    if ip is not None:
        values["last_used_ip"] = ip
    await session.execute(update(ServerToken).where(ServerToken.id.in_(stale.scalar_subquery())).values(**values))


async def list_server_tokens(*, session: AsyncSession, server_id: int) -> list[ServerToken]:
    stmt = select(ServerToken).where(ServerToken.server_id == server_id).order_by(ServerToken.id)
    return list((await session.execute(stmt)).scalars())


async def get_server_token_by_name(*, session: AsyncSession, server_id: int, name: str) -> ServerToken | None:
    stmt = select(ServerToken).where(ServerToken.server_id == server_id, func.lower(ServerToken.name) == name.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_server_token(*, session: AsyncSession, token: ServerToken) -> ServerToken:
    session.add(token)
    await session.flush()
    return token


async def delete_server_token(*, session: AsyncSession, token_id: int) -> None:
    await session.execute(delete(ServerToken).where(ServerToken.id == token_id))
    await announce_revocation(session=session)


async def announce_revocation(*, session: AsyncSession) -> None:
    """Tell every API process (on commit) to drop its cached token look-ups."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": REVOKED_CHANNEL})


async def get_account_token_by_digest(*, session: AsyncSession, digest: str) -> AccountToken | None:
    stmt = select(AccountToken).where(
        AccountToken.token_sha256 == digest, or_(AccountToken.expires_at.is_(None), AccountToken.expires_at > func.now())
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def touch_account_token(*, session: AsyncSession, token_id: int, ip: str | None) -> None:
    stale = (
        select(AccountToken.id)
        .where(
            AccountToken.id == token_id,
            or_(AccountToken.last_used_at.is_(None), AccountToken.last_used_at < func.now() - LAST_USED_EVERY),
        )
        .with_for_update(skip_locked=True)
    )
    values: dict[str, object] = {"last_used_at": func.now()}
    if ip is not None:
        values["last_used_ip"] = ip
    await session.execute(update(AccountToken).where(AccountToken.id.in_(stale.scalar_subquery())).values(**values))


async def list_account_tokens(*, session: AsyncSession) -> list[AccountToken]:
    return list((await session.execute(select(AccountToken).order_by(AccountToken.id))).scalars())


async def get_account_token_by_name(*, session: AsyncSession, name: str) -> AccountToken | None:
    stmt = select(AccountToken).where(func.lower(AccountToken.name) == name.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_account_token(*, session: AsyncSession, token: AccountToken) -> AccountToken:
    session.add(token)
    await session.flush()
    return token


async def delete_account_token(*, session: AsyncSession, token_id: int) -> None:
    await session.execute(delete(AccountToken).where(AccountToken.id == token_id))
    await announce_revocation(session=session)


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
    session.add(ServerToken(server_id=server.id, name="default", token_sha256=token_digest, hint=token_hint))
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
