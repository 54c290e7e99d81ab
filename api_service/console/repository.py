"""SQL for the console's own tables: users, sessions and failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text, update
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
    await session.execute(
        delete(ConsoleSignInFailure).where(ConsoleSignInFailure.last_failed_at < failures_before, ConsoleSignInFailure.locked_until <= now)
    )


async def failures_from(*, session: AsyncSession, client_ip: str, since: datetime) -> tuple[int, datetime | None]:
    """Failed sign-ins from that address since `since`, whatever the user name, and the oldest last failure."""
    stmt = select(func.coalesce(func.sum(ConsoleSignInFailure.failures), 0), func.min(ConsoleSignInFailure.last_failed_at)).where(
        ConsoleSignInFailure.client_ip == client_ip, ConsoleSignInFailure.last_failed_at >= since
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


# The failures in a row with this one (1 for a new pair, or for one whose last failure is older
# than `since`) and the seconds the pair then waits: none before `free` failures, then 1, 2, 4 …
# up to `longest` (the exponent bounded, so that power() cannot overflow). A pair that need not
# wait gets the epoch, not "now": concurrent requests' clocks differ by a little, and one that
# started a moment earlier must not see the pair waiting. A pair still waiting is not updated,
# so the statement returns no row.
_ATTEMPT = text(
    """
    WITH p AS (
        SELECT CAST(:now AS timestamptz) AS now, CAST(:since AS timestamptz) AS since,
               CAST(:free AS integer) AS free, CAST(:longest AS double precision) AS longest
    )
    INSERT INTO console_sign_in_failures AS f (username, client_ip, failures, last_failed_at, locked_until)
    SELECT :username, :client_ip, 1, p.now,
           CASE WHEN 1 >= p.free THEN p.now + make_interval(secs => least(power(2, least(1 - p.free, 30)), p.longest))
                ELSE to_timestamp(0) END
    FROM p
    ON CONFLICT (username, client_ip) DO UPDATE SET
        failures = CASE WHEN f.last_failed_at < (SELECT since FROM p) THEN 1 ELSE f.failures + 1 END,
        last_failed_at = EXCLUDED.last_failed_at,
        locked_until = (
            SELECT CASE WHEN n >= p.free THEN p.now + make_interval(secs => least(power(2, least(n - p.free, 30)), p.longest))
                        ELSE to_timestamp(0) END
            FROM p, LATERAL (SELECT CASE WHEN f.last_failed_at < p.since THEN 1 ELSE f.failures + 1 END AS n) AS counted
        )
    WHERE f.locked_until <= EXCLUDED.last_failed_at
    RETURNING f.failures
    """
)


async def count_attempt(
    *, session: AsyncSession, username: str, client_ip: str, now: datetime, since: datetime, free: int, longest: float
) -> int | None:
    """Count a sign-in attempt of that user name from that address as a failure, in one statement,
    unless the pair must still wait: the failures in a row now, or None while it waits. Counted
    before the password is checked, so parallel tries cannot slip past the count."""
    row = (
        await session.execute(
            _ATTEMPT, {"username": username, "client_ip": client_ip, "now": now, "since": since, "free": free, "longest": longest}
        )
    ).one_or_none()
    return None if row is None else int(row[0])


async def locked_until(*, session: AsyncSession, username: str, client_ip: str) -> datetime | None:
    return await session.scalar(
        select(ConsoleSignInFailure.locked_until).where(
            ConsoleSignInFailure.username == username, ConsoleSignInFailure.client_ip == client_ip
        )
    )


async def clear_failures(*, session: AsyncSession, username: str, client_ip: str) -> None:
    await session.execute(
        delete(ConsoleSignInFailure).where(ConsoleSignInFailure.username == username, ConsoleSignInFailure.client_ip == client_ip)
    )


async def list_users(*, session: AsyncSession) -> list[ConsoleUser]:
    return list((await session.execute(select(ConsoleUser).order_by(ConsoleUser.username))).scalars())
