"""SQL for the console's own tables: users, roles, sessions, failed sign-ins, invitations, second
factors and single sign-ons under way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import (
    ConsoleInvitation,
    ConsoleOidcLogin,
    ConsolePasskey,
    ConsolePolicy,
    ConsoleRecoveryCode,
    ConsoleServerRole,
    ConsoleSession,
    ConsoleSignInFailure,
    ConsoleUser,
    ServerRole,
)


async def get_user(*, session: AsyncSession, username: str) -> ConsoleUser | None:
    return await session.get(ConsoleUser, username)


async def add_user(*, session: AsyncSession, user: ConsoleUser) -> ConsoleUser:
    session.add(user)
    await session.flush()
    return user


async def get_user_for_update(*, session: AsyncSession, username: str) -> ConsoleUser | None:
    return await session.get(ConsoleUser, username, with_for_update=True)


async def get_user_by_subject(*, session: AsyncSession, subject: str) -> ConsoleUser | None:
    return await session.scalar(select(ConsoleUser).where(ConsoleUser.oidc_subject == subject))


async def get_user_by_email(*, session: AsyncSession, email: str) -> ConsoleUser | None:
    return await session.scalar(select(ConsoleUser).where(func.lower(ConsoleUser.email) == email.lower()).limit(1))


async def list_users(*, session: AsyncSession) -> list[ConsoleUser]:
    return list((await session.scalars(select(ConsoleUser).order_by(ConsoleUser.username))).all())


async def count_active_owners(*, session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(ConsoleUser).where(ConsoleUser.role == "owner", ConsoleUser.disabled_at.is_(None))
    return int(await session.scalar(stmt) or 0)


async def server_roles(*, session: AsyncSession, username: str) -> dict[int, ServerRole]:
    rows = await session.execute(select(ConsoleServerRole.server_id, ConsoleServerRole.role).where(ConsoleServerRole.username == username))
    return {int(server_id): ServerRole(role) for server_id, role in rows.all()}


async def all_server_roles(*, session: AsyncSession) -> list[ConsoleServerRole]:
    return list((await session.scalars(select(ConsoleServerRole).order_by(ConsoleServerRole.server_id))).all())


async def replace_server_roles(*, session: AsyncSession, username: str, roles: dict[int, ServerRole]) -> None:
    await session.execute(delete(ConsoleServerRole).where(ConsoleServerRole.username == username))
    session.add_all(ConsoleServerRole(username=username, server_id=server_id, role=role) for server_id, role in roles.items())
    await session.flush()


async def get_policy(*, session: AsyncSession) -> ConsolePolicy | None:
    return await session.get(ConsolePolicy, 1)


async def set_policy(*, session: AsyncSession, require_two_factor: bool) -> None:
    policy = await session.get(ConsolePolicy, 1, with_for_update=True)
    if policy is None:
        session.add(ConsolePolicy(id=1, require_two_factor=require_two_factor))
    else:
        policy.require_two_factor = require_two_factor
    await session.flush()


async def add_invitation(*, session: AsyncSession, row: ConsoleInvitation) -> None:
    await session.execute(delete(ConsoleInvitation).where(ConsoleInvitation.username == row.username))
    session.add(row)
    await session.flush()


async def get_invitation(*, session: AsyncSession, token_sha256: str, now: datetime) -> ConsoleInvitation | None:
    stmt = (
        select(ConsoleInvitation)
        .where(ConsoleInvitation.token_sha256 == token_sha256, ConsoleInvitation.expires_at > now)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_invitations(*, session: AsyncSession, username: str) -> None:
    await session.execute(delete(ConsoleInvitation).where(ConsoleInvitation.username == username))


async def pending_invitations(*, session: AsyncSession, now: datetime) -> dict[str, datetime]:
    rows = await session.execute(select(ConsoleInvitation.username, ConsoleInvitation.expires_at).where(ConsoleInvitation.expires_at > now))
    return {str(username): expires_at for username, expires_at in rows.all()}


async def replace_recovery_codes(*, session: AsyncSession, username: str, digests: list[str]) -> None:
    await session.execute(delete(ConsoleRecoveryCode).where(ConsoleRecoveryCode.username == username))
    session.add_all(ConsoleRecoveryCode(username=username, code_sha256=d) for d in digests)
    await session.flush()


async def use_recovery_code(*, session: AsyncSession, username: str, code_sha256: str, now: datetime) -> bool:
    """Mark an unused code of the user as used, in one statement (so it cannot be used twice)."""
    stmt = (
        update(ConsoleRecoveryCode)
        .where(
            ConsoleRecoveryCode.username == username, ConsoleRecoveryCode.code_sha256 == code_sha256, ConsoleRecoveryCode.used_at.is_(None)
        )
        .values(used_at=now)
        .returning(ConsoleRecoveryCode.id)
    )
    return (await session.execute(stmt)).first() is not None


async def unused_recovery_codes(*, session: AsyncSession, username: str) -> int:
    stmt = select(func.count()).where(ConsoleRecoveryCode.username == username, ConsoleRecoveryCode.used_at.is_(None))
    return int(await session.scalar(stmt) or 0)


async def delete_recovery_codes(*, session: AsyncSession, username: str) -> None:
    await session.execute(delete(ConsoleRecoveryCode).where(ConsoleRecoveryCode.username == username))


async def passkeys(*, session: AsyncSession, username: str) -> list[ConsolePasskey]:
    stmt = select(ConsolePasskey).where(ConsolePasskey.username == username).order_by(ConsolePasskey.created_at)
    return list((await session.scalars(stmt)).all())


async def get_passkey(*, session: AsyncSession, credential_id: str) -> ConsolePasskey | None:
    return await session.get(ConsolePasskey, credential_id, with_for_update=True)


async def add_passkey(*, session: AsyncSession, row: ConsolePasskey) -> None:
    session.add(row)
    await session.flush()


async def delete_passkey(*, session: AsyncSession, username: str, credential_id: str) -> None:
    await session.execute(delete(ConsolePasskey).where(ConsolePasskey.username == username, ConsolePasskey.credential_id == credential_id))


async def add_oidc_login(*, session: AsyncSession, row: ConsoleOidcLogin, now: datetime) -> None:
    await session.execute(delete(ConsoleOidcLogin).where(ConsoleOidcLogin.expires_at <= now))
    session.add(row)
    await session.flush()


async def take_oidc_login(*, session: AsyncSession, state_sha256: str, now: datetime) -> ConsoleOidcLogin | None:
    """The sign-on of that state, removed (a state works once); None when unknown or expired."""
    stmt = delete(ConsoleOidcLogin).where(ConsoleOidcLogin.state_sha256 == state_sha256).returning(ConsoleOidcLogin)
    row = (await session.execute(stmt)).scalar_one_or_none()
    return row if row is not None and row.expires_at > now else None


async def set_session_state(*, session: AsyncSession, token_sha256: str, pending: str | None, challenge: str | None) -> None:
    await session.execute(
        update(ConsoleSession).where(ConsoleSession.token_sha256 == token_sha256).values(pending=pending, challenge=challenge)
    )


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
