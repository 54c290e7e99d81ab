"""Console-only rules: users and their roles, sessions, CSRF tokens, sign-in throttling and the
second factor of a sign-in.

Sessions are server-side rows, not signed cookies: the cookie is 32 random bytes and only its
SHA-256 is stored, so signing out (or a new password, or a new account token) ends a session at
once, and no signing key has to be configured, kept secret and shared between API workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
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
from api_service.console.access import Identity, Pending
from api_service.console.events import audit_event
from api_service.errors import PostmarkError
from api_service.mail.addresses import Mailbox
from api_service.models import AccountRole, ConsoleInvitation, ConsoleSession, ConsoleUser, ServerRole
from api_service.senders import system_mail

ADMIN_USERNAME = "admin"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()
# Verified against when the user name is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ConsoleUserError(ValueError):
    """A user name or password that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class SignInResult:
    """`token` for the cookie on success; `retry_after` seconds when throttled; neither when refused."""

    token: str | None = None
    retry_after: int | None = None
    message: str | None = None
    pending: Pending | None = None


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
    """A user name as stored (lower case), or ConsoleUserError."""
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


def parse_role(value: str) -> AccountRole | ServerRole:
    """`owner`, `admin`, `editor` or `viewer` (any case)."""
    name = value.strip().lower()
    for kind in (AccountRole, ServerRole):
        if name in kind._value2member_map_ and name != AccountRole.MEMBER:
            return kind(name)
    raise ConsoleUserError(f"'{value}' is not a role: owner, admin, editor or viewer.")


def _role_columns(role: AccountRole | ServerRole, server_ids: list[int]) -> tuple[AccountRole, dict[int, ServerRole]]:
    if isinstance(role, ServerRole):
        if not server_ids:
            raise ConsoleUserError(f"An {role.value} needs the servers they may {'change' if role is ServerRole.EDITOR else 'read'}.")
        return AccountRole.MEMBER, dict.fromkeys(server_ids, role)
    return role, {}


def clean_email(value: str | None) -> str | None:
    email = (value or "").strip()
    if not email:
        return None
    if email.count("@") != 1 or len(email) > 254 or any(c in email for c in " <>\r\n,;\x00"):
        raise ConsoleUserError(f"'{email}' is not an email address.")
    return email


async def create_user(
    *,
    session: AsyncSession,
    username: str,
    password: str | None,
    role: AccountRole | ServerRole = AccountRole.OWNER,
    server_ids: list[int] | None = None,
    email: str | None = None,
    can_read_bodies: bool = False,
    actor: str = "shell",
) -> ConsoleUser:
    """A new user. `create-user` makes Owners (every user could change everything before roles)."""
    name = clean_username(username)
    if password is not None:
        check_password(password)
    account_role, server_roles = _role_columns(role, server_ids or [])
    if await repository.get_user(session=session, username=name) is not None:
        raise ConsoleUserError(f"The user '{name}' already exists.")
    password_hash = await asyncio.to_thread(hash_password, password) if password is not None else None
    user = await repository.add_user(
        session=session,
        user=ConsoleUser(
            username=name,
            password_hash=password_hash,
            role=account_role,
            email=clean_email(email),
            can_read_bodies=can_read_bodies,
            session_version=0,
        ),
    )
    if server_roles:
        await repository.replace_server_roles(session=session, username=name, roles=server_roles)
    await audit_event(
        session=session, actor=actor, action="user.created", target=name, details={"role": role.value, "servers": server_ids or []}
    )
    return user


async def _user_or_raise(*, session: AsyncSession, username: str) -> ConsoleUser:
    name = username.strip().lower()
    user = await repository.get_user_for_update(session=session, username=name)
    if user is None:
        raise ConsoleUserError(f"There is no user '{name}'.")
    return user


async def _keep_an_owner(*, session: AsyncSession, settings: Settings, user: ConsoleUser) -> None:
    """Refuse to take away the last Owner who can sign in (unless `admin` can, with the account token)."""
    last = user.role is AccountRole.OWNER and user.disabled_at is None and not settings.account_token
    if last and await repository.count_active_owners(session=session) <= 1:
        raise ConsoleUserError(f"{user.username} is the last Owner: make another Owner first.")


async def set_role(
    *,
    session: AsyncSession,
    settings: Settings,
    username: str,
    role: AccountRole | ServerRole,
    server_ids: list[int] | None = None,
    can_read_bodies: bool | None = None,
    actor: str = "shell",
    client_ip: str | None = None,
) -> ConsoleUser:
    """A user's new role; it applies to their next request (roles are read at every request)."""
    user = await _user_or_raise(session=session, username=username)
    if actor == user.username and role is not user.role:
        raise ConsoleUserError("You cannot change your own role; ask another Owner.")
    account_role, server_roles = _role_columns(role, server_ids or [])
    before_role, before_servers = user.role.value, await repository.server_roles(session=session, username=user.username)
    if account_role is not AccountRole.OWNER:
        await _keep_an_owner(session=session, settings=settings, user=user)
    user.role = account_role
    if can_read_bodies is not None:
        user.can_read_bodies = can_read_bodies
    await repository.replace_server_roles(session=session, username=user.username, roles=server_roles)
    await audit_event(
        session=session,
        actor=actor,
        action="user.role_changed",
        target=user.username,
        client_ip=client_ip,
        details={
            "before": {"role": before_role, "servers": {str(k): v.value for k, v in before_servers.items()}},
            "after": {"role": role.value, "servers": server_ids or [], "can_read_bodies": user.can_read_bodies},
        },
    )
    return user


async def set_disabled(
    *, session: AsyncSession, settings: Settings, username: str, disabled: bool, actor: str = "shell", client_ip: str | None = None
) -> ConsoleUser:
    """Disable a user (every session of theirs ends at once, their invitation stops working) or enable them again."""
    user = await _user_or_raise(session=session, username=username)
    if disabled:
        if actor == user.username:
            raise ConsoleUserError("You cannot disable yourself.")
        await _keep_an_owner(session=session, settings=settings, user=user)
        if user.disabled_at is None:
            user.disabled_at = datetime.now(UTC)
        user.session_version += 1
        await repository.delete_user_sessions(session=session, username=user.username)
        await repository.delete_invitations(session=session, username=user.username)
    else:
        user.disabled_at = None
    await session.flush()
    await audit_event(
        session=session, actor=actor, action="user.disabled" if disabled else "user.enabled", target=user.username, client_ip=client_ip
    )
    return user


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


def user_fingerprint(user: ConsoleUser) -> str | None:
    """Digest of what a session of the user depends on: their password, their SSO subject and their
    session version (raised to end every session). None when the user cannot sign in."""
    if user.disabled_at is not None:
        return None
    return sha256(f"user:{user.password_hash or ''}:{user.oidc_subject or ''}:{user.session_version}")


async def _check_credentials(*, session: AsyncSession, settings: Settings, username: str, password: str) -> bool:
    if username == ADMIN_USERNAME:
        expected = settings.account_token
        # Compare digests: hmac.compare_digest leaks the length of its arguments, not of a hash.
        return bool(expected) and hmac.compare_digest(sha256(expected.strip()), sha256(password.strip()))
    user = await repository.get_user(session=session, username=username)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, password)
    return ok and user is not None and user.password_hash is not None and user.disabled_at is None


async def requires_two_factor(*, session: AsyncSession) -> bool:
    policy = await repository.get_policy(session=session)
    return policy is not None and policy.require_two_factor


async def has_second_factor(*, session: AsyncSession, user: ConsoleUser) -> bool:
    return user.totp_enabled_at is not None or bool(await repository.passkeys(session=session, username=user.username))


async def pending_after_password(*, session: AsyncSession, user: ConsoleUser | None) -> Pending | None:
    """What a session still lacks after the password: the second factor, or (when the account
    requires one and the user has none) its enrolment. `admin` signs in with the account token alone."""
    if user is None:
        return None
    if await has_second_factor(session=session, user=user):
        return Pending.SECOND_FACTOR
    return Pending.ENROL if await requires_two_factor(session=session) else None


async def start_session(
    *,
    session: AsyncSession,
    settings: Settings,
    username: str,
    fingerprint: str,
    pending: Pending | None,
    now: datetime,
    via_sso: bool = False,
) -> str:
    """A new session row; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    await repository.add_session(
        session=session,
        row=ConsoleSession(
            token_sha256=sha256(token),
            username=username,
            credential_sha256=fingerprint,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(hours=settings.console_session_hours),
            created_at=now,
            pending=pending.value if pending else None,
            via_sso=via_sso,
        ),
    )
    return token


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
    """Check the credentials under the throttle; on success store a new session (maybe still
    waiting for the second factor) and return its token."""
    now = now or datetime.now(UTC)
    name = username.strip().lower()[:64]
    if settings.sso_only and name != settings.console_break_glass_user.strip().lower():
        return SignInResult(message="Passwords are off: sign in with single sign-on.")
    throttled = await _throttled(session=session, settings=settings, name=name, client_ip=client_ip, now=now)
    if throttled is not None:
        return throttled
    if not name or not await _check_credentials(session=session, settings=settings, username=name, password=password):
        await audit_event(session=session, actor=name or "-", action="sign_in.failed", client_ip=client_ip)
        return SignInResult()  # the failure is already counted
    user = None if name == ADMIN_USERNAME else await repository.get_user(session=session, username=name)
    fingerprint = _admin_fingerprint(settings) if user is None else user_fingerprint(user)
    if fingerprint is None or (user is None and name != ADMIN_USERNAME):  # the user vanished between the two reads
        return SignInResult()
    await repository.clear_failures(session=session, username=name, client_ip=client_ip)
    pending = await pending_after_password(session=session, user=user)
    token = await start_session(session=session, settings=settings, username=name, fingerprint=fingerprint, pending=pending, now=now)
    if pending is not Pending.SECOND_FACTOR:
        await audit_event(session=session, actor=name, action="sign_in.succeeded", client_ip=client_ip, details={"method": "password"})
    return SignInResult(token=token, pending=pending)


async def two_factor_throttle(*, session: AsyncSession, settings: Settings, username: str, client_ip: str) -> int | None:
    """Count a second-factor try like a sign-in (its own pair): the seconds to wait, or None to go on."""
    result = await _throttled(session=session, settings=settings, name=f"{username[:59]}#2fa", client_ip=client_ip, now=datetime.now(UTC))
    return None if result is None else result.retry_after


async def second_factor_passed(*, session: AsyncSession, settings: Settings, identity: Identity, client_ip: str, method: str) -> str | None:
    """Sign the user in fully: the half-signed-in session is replaced by a new one (a new cookie
    token and CSRF token, so nothing seen before the second factor stays valid). Returns its token,
    or None when the half session is gone meanwhile."""
    now = datetime.now(UTC)
    row = await repository.get_live_session(session=session, token_sha256=identity.session_digest, now=now)
    if row is None:
        return None
    await repository.delete_session(session=session, token_sha256=identity.session_digest)
    await repository.clear_failures(session=session, username=f"{identity.username[:59]}#2fa", client_ip=client_ip)
    token = await start_session(
        session=session, settings=settings, username=identity.username, fingerprint=row.credential_sha256, pending=None, now=now
    )
    await audit_event(session=session, actor=identity.username, action="sign_in.succeeded", client_ip=client_ip, details={"method": method})
    return token


async def current_identity(*, session: AsyncSession, settings: Settings, token: str | None, now: datetime | None = None) -> Identity | None:
    """Who a session cookie signs in (maybe still pending a second factor), or None when the session
    is unknown or expired, or its user is disabled, gone or has a new password or session version."""
    if not token or len(token) > 200:
        return None
    row = await repository.get_live_session(session=session, token_sha256=sha256(token), now=now or datetime.now(UTC))
    if row is None:
        return None
    pending = Pending(row.pending) if row.pending else None
    if row.username == ADMIN_USERNAME:
        fingerprint = _admin_fingerprint(settings) if settings.account_token else None
        if fingerprint is None or not hmac.compare_digest(fingerprint, row.credential_sha256):
            return None
        return Identity(username=row.username, csrf_token=row.csrf_token, pending=pending, session_digest=row.token_sha256)
    user = await repository.get_user(session=session, username=row.username)
    fingerprint = user_fingerprint(user) if user is not None else None
    if user is None or fingerprint is None or not hmac.compare_digest(fingerprint, row.credential_sha256):
        return None
    # The Owner may have required 2FA after this sign-in: enrol before anything else.
    if (
        pending is None
        and not row.via_sso
        and await requires_two_factor(session=session)
        and not await has_second_factor(session=session, user=user)
    ):
        pending = Pending.ENROL
    return Identity(
        username=user.username,
        csrf_token=row.csrf_token,
        role=user.role,
        server_roles=await repository.server_roles(session=session, username=user.username) if user.role is AccountRole.MEMBER else {},
        can_read_bodies=user.can_read_bodies or user.role is not AccountRole.MEMBER,
        pending=pending,
        session_digest=row.token_sha256,
    )


async def sign_out(*, session: AsyncSession, token: str | None) -> None:
    if token:
        await repository.delete_session(session=session, token_sha256=sha256(token))


async def list_users(*, session: AsyncSession) -> list[ConsoleUser]:
    """The named console users (not `admin`, which is the account token's)."""
    return await repository.list_users(session=session)


# --- invitations -------------------------------------------------------------------------------

INVITATION_PATH = "/console/invitations/"
INVITATION_TAG = "console-invitation"


def invitation_mail(*, username: str, email: str, inviter: str, link: str, hours: float) -> system_mail.SystemMail:
    text = (
        f"Hello,\n\n{inviter} invited you to the Postgate mail console as {username}.\n\n"
        f"Choose your password here (the link works once, for {hours:g} hours):\n\n{link}\n\n"
        "If you did not expect this, ignore this message.\n"
    )
    page = (
        f"<p>Hello,</p><p>{html.escape(inviter)} invited you to the Postgate mail console as <strong>{html.escape(username)}</strong>.</p>"
        f'<p><a href="{html.escape(link)}">Choose your password</a> (the link works once, for {hours:g} hours).</p>'
        "<p>If you did not expect this, ignore this message.</p>"
    )
    return system_mail.SystemMail(
        to=Mailbox(name="", email=email), subject="Your invitation to the Postgate console", text=text, html=page, tag=INVITATION_TAG
    )


async def invite_user(
    *,
    session: AsyncSession,
    settings: Settings,
    username: str,
    email: str,
    role: AccountRole | ServerRole,
    server_ids: list[int] | None = None,
    can_read_bodies: bool = False,
    actor: str,
    client_ip: str | None = None,
) -> ConsoleUser:
    """A new user without a password, and a single-use link mailed through Postgate's own mail to set one."""
    address = clean_email(email)
    if address is None:
        raise ConsoleUserError("An invitation needs the email address to send it to.")
    user = await create_user(
        session=session,
        username=username,
        password=None,
        role=role,
        server_ids=server_ids,
        email=address,
        can_read_bodies=can_read_bodies,
        actor=actor,
    )
    await send_invitation(session=session, settings=settings, user=user, actor=actor)
    await audit_event(
        session=session, actor=actor, action="user.invited", target=user.username, client_ip=client_ip, details={"email": address}
    )
    return user


async def send_invitation(*, session: AsyncSession, settings: Settings, user: ConsoleUser, actor: str) -> None:
    """A new link (any earlier one stops working) mailed to the user's address."""
    if not user.email:
        raise ConsoleUserError(f"{user.username} has no email address to send an invitation to.")
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await repository.add_invitation(
        session=session,
        row=ConsoleInvitation(
            token_sha256=sha256(token),
            username=user.username,
            invited_by=actor,
            expires_at=now + timedelta(hours=settings.console_invitation_hours),
            created_at=now,
        ),
    )
    link = f"{settings.public_base_url}{INVITATION_PATH}{token}"
    mail = invitation_mail(username=user.username, email=user.email, inviter=actor, link=link, hours=settings.console_invitation_hours)
    try:
        await system_mail.send(session=session, settings=settings, mail=mail)
    except PostmarkError as exc:
        raise ConsoleUserError(f"The invitation could not be mailed: {exc.message}") from exc


async def invitation_user(*, session: AsyncSession, token: str) -> ConsoleUser | None:
    """The (enabled) user a live invitation link is for, or None."""
    if not token or len(token) > 200:
        return None
    invitation = await repository.get_invitation(session=session, token_sha256=sha256(token), now=datetime.now(UTC))
    if invitation is None:
        return None
    user = await repository.get_user_for_update(session=session, username=invitation.username)
    return user if user is not None and user.disabled_at is None else None


async def accept_invitation(*, session: AsyncSession, token: str, password: str, client_ip: str | None = None) -> ConsoleUser:
    """Set the invitee's password; the link stops working."""
    user = await invitation_user(session=session, token=token)
    if user is None:
        raise ConsoleUserError("This invitation link is used, expired or withdrawn. Ask an Owner for a new one.")
    check_password(password)
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await repository.delete_invitations(session=session, username=user.username)
    await session.flush()
    await audit_event(session=session, actor=user.username, action="user.invitation_accepted", target=user.username, client_ip=client_ip)
    return user


async def users_overview(*, session: AsyncSession) -> tuple[list[ConsoleUser], dict[str, dict[int, ServerRole]], dict[str, datetime]]:
    """Every user, each one's server roles, and the invitations still open (by user name)."""
    users = await repository.list_users(session=session)
    roles: dict[str, dict[int, ServerRole]] = {}
    for row in await repository.all_server_roles(session=session):
        roles.setdefault(row.username, {})[row.server_id] = row.role
    return users, roles, await repository.pending_invitations(session=session, now=datetime.now(UTC))


async def set_two_factor_policy(*, session: AsyncSession, required: bool, actor: str, client_ip: str | None = None) -> None:
    await repository.set_policy(session=session, require_two_factor=required)
    await audit_event(session=session, actor=actor, action="policy.two_factor", client_ip=client_ip, details={"required": required})


async def reinvite(*, session: AsyncSession, settings: Settings, username: str, actor: str, client_ip: str | None = None) -> ConsoleUser:
    """A new invitation link for a user who has not chosen a password yet (the earlier link stops working)."""
    user = await _user_or_raise(session=session, username=username)
    if user.password_hash is not None or user.disabled_at is not None:
        raise ConsoleUserError(f"{user.username} is not waiting for an invitation.")
    await send_invitation(session=session, settings=settings, user=user, actor=actor)
    await audit_event(
        session=session, actor=actor, action="user.invited", target=user.username, client_ip=client_ip, details={"email": user.email}
    )
    return user
