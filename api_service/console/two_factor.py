"""The second factor of a console sign-in: a TOTP authenticator app (RFC 6238, `pyotp`) with
single-use recovery codes, and WebAuthn passkeys (`webauthn`, see `passkeys.py`).

The TOTP secret is kept as it is (the server must compute the same codes); each code works once
(the last accepted time step is stored) and one step of clock drift either way is accepted. The
recovery codes are random (50 bits each), so their SHA-256 is enough to keep them unguessable from
a copy of the database; each is marked used in one statement.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import repository
from api_service.console.events import audit_event
from api_service.console.service import ConsoleUserError, sha256
from api_service.models import ConsoleUser

ISSUER = "Postgate"
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the set-up page shows: the secret, as text and as a QR code (inline SVG made here, never by a third party)."""

    secret: str
    uri: str
    qr_svg: str


def _user_or_raise(user: ConsoleUser | None) -> ConsoleUser:
    if user is None:
        raise ConsoleUserError("Only named console users have a second factor; `admin` signs in with the account token.")
    return user


async def start_totp(*, session: AsyncSession, username: str, label: str) -> Enrolment:
    """A secret to scan, kept (not yet in force) until a first code confirms it; the same one on a reload."""
    user = _user_or_raise(await repository.get_user_for_update(session=session, username=username))
    if user.totp_enabled_at is not None:
        raise ConsoleUserError("An authenticator app is already set up; turn it off first to set up another.")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        await session.flush()
    uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=f"{user.username}@{label}", issuer_name=ISSUER)
    return Enrolment(secret=user.totp_secret, uri=uri, qr_svg=segno.make(uri, error="m").svg_inline(scale=4, dark="#111"))


def _accepted_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step a 6-digit code belongs to (now, or one step either side), unless it was used already."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step if last_step is None or step > last_step else None
    return None


def new_recovery_codes() -> list[str]:
    return ["-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(5)) for _ in range(2)) for _ in range(RECOVERY_CODES)]


async def replace_recovery_codes(*, session: AsyncSession, username: str) -> list[str]:
    codes = new_recovery_codes()
    await repository.replace_recovery_codes(session=session, username=username, digests=[sha256(c) for c in codes])
    return codes


async def confirm_totp(*, session: AsyncSession, username: str, code: str, client_ip: str | None = None) -> list[str]:
    """Put the pending secret in force after a right code; returns new recovery codes (shown once)."""
    user = _user_or_raise(await repository.get_user_for_update(session=session, username=username))
    if not user.totp_secret or user.totp_enabled_at is not None:
        raise ConsoleUserError("Start the set-up again: there is no authenticator app waiting for a first code.")
    now = datetime.now(UTC)
    step = _accepted_step(user.totp_secret, code, now=now, last_step=None)
    if step is None:
        raise ConsoleUserError("That code is not right. Check the phone's clock, and type the 6 digits the app shows now.")
    user.totp_enabled_at, user.totp_last_step = now, step
    codes = await replace_recovery_codes(session=session, username=user.username)
    await audit_event(session=session, actor=user.username, action="two_factor.totp_enabled", target=user.username, client_ip=client_ip)
    return codes


async def disable_totp(*, session: AsyncSession, username: str, actor: str, client_ip: str | None = None) -> None:
    user = _user_or_raise(await repository.get_user_for_update(session=session, username=username))
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    if not await repository.passkeys(session=session, username=user.username):
        await repository.delete_recovery_codes(session=session, username=user.username)
    await session.flush()
    await audit_event(session=session, actor=actor, action="two_factor.totp_disabled", target=user.username, client_ip=client_ip)


async def check_code(*, session: AsyncSession, username: str, code: str) -> str | None:
    """A sign-in's second factor typed in: a TOTP code (once) or an unused recovery code (used up
    now). Returns how it was passed (`totp`, `recovery-code`), or None."""
    user = await repository.get_user_for_update(session=session, username=username)
    if user is None:
        return None
    now = datetime.now(UTC)
    if user.totp_enabled_at is not None and user.totp_secret:
        step = _accepted_step(user.totp_secret, code, now=now, last_step=user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            await session.flush()
            return "totp"
    typed = "".join(code.lower().split())
    if len(typed) == 11 and await repository.use_recovery_code(session=session, username=user.username, code_sha256=sha256(typed), now=now):
        await audit_event(session=session, actor=user.username, action="two_factor.recovery_code_used", target=user.username)
        return "recovery-code"
    return None
