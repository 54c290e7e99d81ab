"""SQL for the console's own tables: users, sessions and failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import ConsoleSession, ConsoleSignInFailure, ConsoleUser


async def get_user(*, session: AsyncSession, username: str) -> ConsoleUser | None:
    return await session.get(ConsoleUser, username)


async def add_user(*, session: AsyncSession, user: ConsoleUser) -> ConsoleUser:
    session.add(user)
    await session.flush()
    return user


async def set_password_hash(*, session: AsyncSession, username: str, password_hash: str) -> None:
    await session.execute(update(ConsoleUser).where(ConsoleUser.username == username).values(password_hash=password_hash))


async def add_session(*, session: AsyncSession, row: ConsoleSession) -> None:
    session.add(row)
    await session.flush()


async def get_live_session(*, session: AsyncSession, token_sha256: str, now: datetime) -> ConsoleSession | None:
    stmt = select(ConsoleSession).where(ConsoleSession.token_sha256 == token_sha256, ConsoleSession.expires_at > now)
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_session(*, session: AsyncSession, token_sha256: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == token_sha256))


async def delete_user_sessions(*, session: AsyncSession, username: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.username == username))


async def delete_expired(*, session: AsyncSession, now: datetime, failures_before: datetime) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    await session.execute(delete(ConsoleSignInFailure).where(ConsoleSignInFailure.failed_at < failures_before))


async def failures_since(
    *, session: AsyncSession, since: datetime, client_ip: str | None = None, username: str | None = None
) -> tuple[int, datetime | None]:
    """How many failed sign-ins since `since` from that IP (or for that user name), and the oldest."""
    stmt = select(func.count(), func.min(ConsoleSignInFailure.failed_at)).where(ConsoleSignInFailure.failed_at >= since)
    if client_ip is not None:
        stmt = stmt.where(ConsoleSignInFailure.client_ip == client_ip)
    if username is not None:
        stmt = stmt.where(ConsoleSignInFailure.username == username)
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


async def add_failure(*, session: AsyncSession, client_ip: str, username: str, at: datetime) -> None:
    session.add(ConsoleSignInFailure(client_ip=client_ip, username=username, failed_at=at))
    await session.flush()


async def clear_failures(*, session: AsyncSession, username: str) -> None:
    await session.execute(delete(ConsoleSignInFailure).where(ConsoleSignInFailure.username == username))
