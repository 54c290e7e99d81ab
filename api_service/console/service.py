"""Console-only rules: users, sessions, CSRF tokens and sign-in throttling.

Sessions are server-side rows, not signed cookies: the cookie is 32 random bytes and only its
SHA-256 is stored, so signing out (or a new password, or a new account token) ends a session at
once, and no signing key has to be configured, kept secret and shared between API workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.console import repository
from api_service.models import ConsoleSession, ConsoleUser

ADMIN_USERNAME = "admin"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()
# Verified against when the user name is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ConsoleUserError(ValueError):
    """A user name or password that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in, and the CSRF token their forms must carry."""

    username: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.username == ADMIN_USERNAME


@dataclass(frozen=True, slots=True)
class SignInResult:
    """`token` for the cookie on success; `retry_after` seconds when throttled; neither when refused."""

    token: str | None = None
    retry_after: int | None = None


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def tokens_equal(expected: str, given: str | None) -> bool:
    """Constant-time comparison for CSRF tokens; an empty or missing token never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def clean_username(name: str) -> str:
    username = name.strip().lower()
    if not USERNAME.match(username):
        raise ConsoleUserError("A user name is 1 to 64 characters: letters, digits and . _ @ - (starting with a letter or digit).")
    if username == ADMIN_USERNAME:
        raise ConsoleUserError(f"'{ADMIN_USERNAME}' is the built-in user that signs in with the account token.")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConsoleUserError(f"A password has at least {MIN_PASSWORD_CHARS} characters.")
    if "\x00" in password:
        raise ConsoleUserError("A password cannot contain NUL characters.")
    return password


async def create_user(*, session: AsyncSession, username: str, password: str) -> ConsoleUser:
    name = clean_username(username)
    check_password(password)
    if await repository.get_user(session=session, username=name) is not None:
        raise ConsoleUserError(f"The user '{name}' already exists.")
    password_hash = await asyncio.to_thread(hash_password, password)
    return await repository.add_user(session=session, user=ConsoleUser(username=name, password_hash=password_hash))


async def set_password(*, session: AsyncSession, username: str, password: str) -> None:
    """A new password for an existing user; it signs that user out everywhere."""
    name = username.strip().lower()
    check_password(password)
    if await repository.get_user(session=session, username=name) is None:
        raise ConsoleUserError(f"There is no user '{name}'.")
    await repository.set_password_hash(session=session, username=name, password_hash=await asyncio.to_thread(hash_password, password))
    await repository.delete_user_sessions(session=session, username=name)


def _admin_fingerprint(settings: Settings) -> str:
    return sha256("account-token:" + settings.account_token)


async def _credential_fingerprint(*, session: AsyncSession, settings: Settings, username: str) -> str | None:
    """Digest of the credential a user signs in with now; None when the user cannot sign in."""
    if username == ADMIN_USERNAME:
        return _admin_fingerprint(settings) if settings.account_token else None
    user = await repository.get_user(session=session, username=username)
    return sha256("password:" + user.password_hash) if user is not None else None


async def _check_credentials(*, session: AsyncSession, settings: Settings, username: str, password: str) -> bool:
    if username == ADMIN_USERNAME:
        expected = settings.account_token
        # Compare digests: hmac.compare_digest leaks the length of its arguments, not of a hash.
        return bool(expected) and hmac.compare_digest(sha256(expected.strip()), sha256(password.strip()))
    user = await repository.get_user(session=session, username=username)
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else _DUMMY_HASH, password)
    return ok and user is not None


def _seconds_until(moment: datetime | None, *, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds())) if moment is not None else 1


async def _throttled(*, session: AsyncSession, settings: Settings, name: str, client_ip: str, now: datetime) -> SignInResult | None:
    """Count this attempt against its (user name, address) pair, or say how long to wait.

    The attempt counts as a failure before the password is checked (one statement, atomic), so
    parallel tries cannot slip past the count; a success then clears the pair. A pair waits 1 s
    after CONSOLE_FAILURES_BEFORE_DELAY failures in a row, twice as long after each next one, at
    most CONSOLE_FAILURE_WINDOW_SECONDS; another address, the owner's, is not held back by it.
    """
    window = timedelta(seconds=settings.console_failure_window_seconds)
    await repository.delete_expired(session=session, now=now, failures_before=now - window)
    by_ip, oldest = await repository.failures_from(session=session, client_ip=client_ip, since=now - window)
    if by_ip >= settings.console_failures_per_ip:
        return SignInResult(retry_after=_seconds_until(oldest + window if oldest else None, now=now))
    counted = await repository.count_attempt(
        session=session,
        username=name,
        client_ip=client_ip,
        now=now,
        since=now - window,
        free=settings.console_failures_before_delay,
        longest=window.total_seconds(),
    )
    if counted is None:
        until = await repository.locked_until(session=session, username=name, client_ip=client_ip)
        return SignInResult(retry_after=_seconds_until(until, now=now))
    return None


async def sign_in(
    *, session: AsyncSession, settings: Settings, username: str, password: str, client_ip: str, now: datetime | None = None
) -> SignInResult:
    """Check the credentials under the throttle; on success store a new session and return its token."""
    now = now or datetime.now(UTC)
    name = username.strip().lower()[:64]
    throttled = await _throttled(session=session, settings=settings, name=name, client_ip=client_ip, now=now)
    if throttled is not None:
        return throttled
    if not name or not await _check_credentials(session=session, settings=settings, username=name, password=password):
        return SignInResult()  # the failure is already counted
    fingerprint = await _credential_fingerprint(session=session, settings=settings, username=name)
    if fingerprint is None:  # the user vanished between the two reads
        return SignInResult()
    await repository.clear_failures(session=session, username=name, client_ip=client_ip)
    token = secrets.token_urlsafe(32)
    await repository.add_session(
        session=session,
        row=ConsoleSession(
            token_sha256=sha256(token),
            username=name,
            credential_sha256=fingerprint,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(hours=settings.console_session_hours),
            created_at=now,
        ),
    )
    return SignInResult(token=token)


async def current_identity(*, session: AsyncSession, settings: Settings, token: str | None, now: datetime | None = None) -> Identity | None:
    """The signed-in user of a session cookie, or None when it is unknown, expired or its credential changed."""
    if not token or len(token) > 200:
        return None
    row = await repository.get_live_session(session=session, token_sha256=sha256(token), now=now or datetime.now(UTC))
    if row is None:
        return None
    fingerprint = await _credential_fingerprint(session=session, settings=settings, username=row.username)
    if fingerprint is None or not hmac.compare_digest(fingerprint, row.credential_sha256):
        return None
    return Identity(username=row.username, csrf_token=row.csrf_token)


async def sign_out(*, session: AsyncSession, token: str | None) -> None:
    if token:
        await repository.delete_session(session=session, token_sha256=sha256(token))


async def list_users(*, session: AsyncSession) -> list[ConsoleUser]:
    """The named console users (not `admin`, which is the account token's)."""
    return await repository.list_users(session=session)
