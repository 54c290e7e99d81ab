"""API tokens: several named server tokens per server and named account tokens, each with a scope,
an optional expiry and its last use; shown once, kept as digests, revocable at once.

Revocation reaches every process within a second: the revoking transaction announces it on a
PostgreSQL channel (`repository.REVOKED_CHANNEL`) that each API process listens to and answers by
dropping its cached look-ups (`cache.SERVER_SNAPSHOTS`, one second at most anyway); the SMTP gateway
asks the API at every AUTH and for every message, so it needs no telling.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api_service.audit import service as audit
from api_service.errors import NotFound, PostmarkError
from api_service.models import AccountToken, Server, ServerToken
from api_service.servers import repository
from api_service.servers.cache import SERVER_SNAPSHOTS
from api_service.servers.tokens import new_token, same_token, token_digest
from shared.constants import ErrorCode, TokenScope

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
BREAK_GLASS_NAME = "ACCOUNT_TOKEN"
# Paths a `send` token may use: the send endpoints (single, batch, templates, bulk) and the SMTP gateway's.
SEND_PREFIXES = ("/email", "/internal/smtp")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY_SECONDS = 60.0


class TokenScopeForbidden(PostmarkError):
    """ErrorCode 1470 (Postgate's own), HTTP 403: the token is valid but its scope does not allow the request."""

    def __init__(self, scope: TokenScope) -> None:
        allowed = "only the send endpoints (/email…) and SMTP" if scope is TokenScope.SEND else "only reading (GET)"
        super().__init__(ErrorCode.TOKEN_SCOPE_FORBIDDEN, f"This token's scope is '{scope}': it allows {allowed}.", 403)


@dataclass(frozen=True, slots=True)
class TokenUse:
    """Which token authenticated a request: for its scope, its last-used record and the audit log."""

    kind: str  # "server" or "account"
    id: int
    name: str
    scope: TokenScope

    @property
    def actor(self) -> str:
        prefix = "token" if self.kind == "server" else "account-token"
        return f"{prefix}:{self.name}#{self.id}" if self.id else f"{prefix}:{self.name}"


BREAK_GLASS = TokenUse(kind="account", id=0, name=BREAK_GLASS_NAME, scope=TokenScope.FULL)


@dataclass(frozen=True, slots=True)
class CreatedToken:
    """A new token: its row and the token itself, which is shown this once."""

    row: ServerToken | AccountToken
    token: str


def described(row: ServerToken | AccountToken) -> dict[str, Any]:
    """What the audit log keeps of a token: never the token, only its name, scope, expiry and last characters."""
    return {
        "Name": row.name,
        "Scope": str(row.scope),
        "ExpiresAt": row.expires_at.isoformat() if row.expires_at else None,
        "Ends": row.hint,
    }


def scope_allows(scope: TokenScope, *, method: str, path: str) -> bool:
    if scope is TokenScope.FULL:
        return True
    if scope is TokenScope.READ:
        return method.upper() in READ_METHODS
    return path.lower().startswith(SEND_PREFIXES)


def check_scope(use: TokenUse, *, method: str, path: str) -> None:
    if not scope_allows(use.scope, method=method, path=path):
        raise TokenScopeForbidden(use.scope)


def clean_name(name: str) -> str:
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS,
            "Invalid request field(s) - Name: 1 to 64 letters, digits, spaces and . _ @ -, starting with a letter or digit.",
        )
    return name


def parse_scope(value: str | None) -> TokenScope:
    matched = next((s for s in TokenScope if s.value == (value or "full").strip().lower()), None)
    if matched is None:
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "Invalid request field(s) - Scope must be full, send or read.")
    return matched


def parse_expiry(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """An ISO 8601 date or time (UTC when it names no offset), in the future; empty: never expires."""
    if value is None or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - Expires is not an ISO 8601 time: {value!r}."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= (now or datetime.now(UTC)):
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "Invalid request field(s) - Expires must be in the future.")
    return when


# --- server tokens ----------------------------------------------------------------------------


async def create_server_token(
    *, session: AsyncSession, server_id: int, name: str, scope: TokenScope = TokenScope.FULL, expires_at: datetime | None = None
) -> CreatedToken:
    name = clean_name(name)
    if await repository.get_server(session=session, server_id=server_id) is None:
        raise NotFound(ErrorCode.SERVER_QUERY, f"Server {server_id} was not found.")
    if await repository.get_server_token_by_name(session=session, server_id=server_id, name=name) is not None:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - server {server_id} already has a token named {name!r}."
        )
    token = new_token()
    row = ServerToken(server_id=server_id, name=name, token_sha256=token_digest(token), hint=token[-4:], scope=scope, expires_at=expires_at)
    await repository.add_server_token(session=session, token=row)
    audit.note_change(
        session=session,
        action="server-token.create",
        target_type="server-token",
        target_id=row.id,
        server_id=server_id,
        after=described(row),
    )
    return CreatedToken(row=row, token=token)


async def list_server_tokens(*, session: AsyncSession, server_id: int) -> list[ServerToken]:
    if await repository.get_server(session=session, server_id=server_id) is None:
        raise NotFound(ErrorCode.SERVER_QUERY, f"Server {server_id} was not found.")
    return await repository.list_server_tokens(session=session, server_id=server_id)


async def revoke_server_token(*, session: AsyncSession, server_id: int, name: str) -> ServerToken:
    """Delete the token: refused from the next request on, in every process (see the module's note)."""
    row = await repository.get_server_token_by_name(session=session, server_id=server_id, name=name.strip())
    if row is None:
        raise NotFound(ErrorCode.SERVER_QUERY, f"Server {server_id} has no token named {name.strip()!r}.")
    await repository.delete_server_token(session=session, token_id=row.id)
    SERVER_SNAPSHOTS.clear()
    audit.note_change(
        session=session,
        action="server-token.revoke",
        target_type="server-token",
        target_id=row.id,
        server_id=server_id,
        before=described(row),
    )
    return row


_TOUCHED: dict[str, float] = {}  # token digest → when this process last wrote its use


def _due(row: ServerToken | AccountToken) -> bool:
    """Write a last use at most once a minute per token: per process here, across processes by the
    row's own time (and the UPDATE's condition)."""
    now = time.monotonic()
    if now - _TOUCHED.get(row.token_sha256, -TOUCH_EVERY_SECONDS) < TOUCH_EVERY_SECONDS:
        return False
    _TOUCHED[row.token_sha256] = now
    if len(_TOUCHED) > 10_000:
        _TOUCHED.clear()
    return row.last_used_at is None or (datetime.now(UTC) - row.last_used_at).total_seconds() >= TOUCH_EVERY_SECONDS


def _use(row: ServerToken) -> TokenUse:
    return TokenUse(kind="server", id=row.id, name=row.name, scope=row.scope)


async def authenticate_server(*, session: AsyncSession, token: str, ip: str | None) -> tuple[Server, TokenUse] | None:
    """The server of this (unexpired) token and which token it is; records its use."""
    if not token:
        return None
    found = await repository.get_server_and_token_by_digest(session=session, digest=token_digest(token))
    if found is None:
        return None
    server, row = found
    if _due(row):
        await repository.touch_server_tokens(session=session, ids=[row.id], ip=ip)
    return server, _use(row)


async def servers_for_smtp(*, session: AsyncSession, tokens: list[str]) -> list[Server | None]:
    """The server of each token that may use SMTP (scope full or send, unexpired), in order; one query."""
    digests = [token_digest(token) for token in tokens]
    found = await repository.get_servers_by_token_digests(session=session, digests=set(digests))
    usable = {d: pair for d, pair in found.items() if pair[1].scope in (TokenScope.FULL, TokenScope.SEND)}
    due = sorted({row.id for _, row in usable.values() if _due(row)})
    if due:
        await repository.touch_server_tokens(session=session, ids=due, ip=None)
    return [usable[d][0] if d in usable else None for d in digests]


# --- account tokens ---------------------------------------------------------------------------


async def create_account_token(
    *, session: AsyncSession, name: str, scope: TokenScope = TokenScope.FULL, expires_at: datetime | None = None
) -> CreatedToken:
    name = clean_name(name)
    if name.upper() == BREAK_GLASS_NAME:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - {BREAK_GLASS_NAME} names the token of the settings."
        )
    if scope is TokenScope.SEND:
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "Invalid request field(s) - an account token's scope is full or read.")
    if await repository.get_account_token_by_name(session=session, name=name) is not None:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - there is already an account token named {name!r}."
        )
    token = new_token()
    row = AccountToken(name=name, token_sha256=token_digest(token), hint=token[-4:], scope=scope, expires_at=expires_at)
    await repository.add_account_token(session=session, token=row)
    audit.note_change(session=session, action="account-token.create", target_type="account-token", target_id=row.id, after=described(row))
    return CreatedToken(row=row, token=token)


async def list_account_tokens(*, session: AsyncSession) -> list[AccountToken]:
    return await repository.list_account_tokens(session=session)


async def revoke_account_token(*, session: AsyncSession, name: str) -> AccountToken:
    row = await repository.get_account_token_by_name(session=session, name=name.strip())
    if row is None:
        raise NotFound(ErrorCode.SERVER_QUERY, f"There is no account token named {name.strip()!r}.")
    await repository.delete_account_token(session=session, token_id=row.id)
    audit.note_change(session=session, action="account-token.revoke", target_type="account-token", target_id=row.id, before=described(row))
    return row


async def authenticate_account(*, session: AsyncSession, token: str, configured: str, ip: str | None) -> TokenUse | None:
    """The ACCOUNT_TOKEN setting (the break-glass token), or a named account token; records its use."""
    if not token:
        return None
    if same_token(token, configured):
        return BREAK_GLASS
    row = await repository.get_account_token_by_digest(session=session, digest=token_digest(token))
    if row is None:
        return None
    if _due(row):
        await repository.touch_account_token(session=session, token_id=row.id, ip=ip)
    return TokenUse(kind="account", id=row.id, name=row.name, scope=row.scope)


# --- revocation across processes --------------------------------------------------------------


LISTEN_RETRY_SECONDS = 5.0


def _heard(*_: object) -> None:
    SERVER_SNAPSHOTS.clear()


async def _listen(engine: AsyncEngine) -> None:
    """Hold one connection listening for revocations; after losing it (a database restart), listen
    again on a new one. While not listening, the cache's one-second life bounds staleness."""
    while True:
        try:
            async with engine.connect() as connection:
                raw: Any = (await connection.get_raw_connection()).driver_connection
                lost = asyncio.Event()
                raw.add_termination_listener(lambda *_, lost=lost: lost.set())
                await raw.add_listener(repository.REVOKED_CHANNEL, _heard)
                SERVER_SNAPSHOTS.clear()  # whatever was revoked while no one listened
                try:
                    await lost.wait()
                finally:
                    with suppress(Exception):
                        await raw.remove_listener(repository.REVOKED_CHANNEL, _heard)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is away: try again later
            log.warning("token revocations: not listening; cached look-ups expire within a second instead", exc_info=True)
        await asyncio.sleep(LISTEN_RETRY_SECONDS)


@asynccontextmanager
async def revocations_heard(engine: AsyncEngine) -> AsyncIterator[None]:
    """For the process' life, drop the cached token look-ups as soon as any process announces a revocation."""
    task = asyncio.create_task(_listen(engine), name="token-revocations")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
