"""Authentication dependencies: the server token and the account token."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from api_service.deps import AppSettings, Session
from api_service.errors import InvalidToken
from api_service.models import Server
from api_service.servers import token_service
from api_service.servers.cache import SERVER_SNAPSHOTS, ServerSnapshot
from api_service.servers.tokens import token_digest
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER, TokenScope

TEST_TOKEN = "POSTMARK_API_TEST"  # noqa: S105 - Postmark's public test token, not a secret
SERVER_TOKEN_MISSING = "Request does not contain a valid Server token. Please check that the X-Postmark-Server-Token header is set."  # noqa: S105 - a message, not a secret
ACCOUNT_TOKEN_MISSING = "Request does not contain a valid Account token. Please check that the X-Postmark-Account-Token header is set."  # noqa: S105 - a message, not a secret


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _on_gateway_path(request: Request) -> bool:
    return request.url.path.startswith("/internal/")


async def current_server(request: Request, session: Session) -> Server:
    """The server whose token is in `X-Postmark-Server-Token`; a token whose scope does not allow
    the request gets 403 (ErrorCode 1470)."""
    token = request.headers.get(SERVER_TOKEN_HEADER, "")
    if not token:
        raise InvalidToken(SERVER_TOKEN_MISSING)
    gateway = _on_gateway_path(request)
    found = await token_service.authenticate_server(session=session, token=token, ip=None if gateway else _client_ip(request))
    if found is None:
        raise InvalidToken(SERVER_TOKEN_MISSING)
    server, use = found
    if gateway and use.scope is TokenScope.READ:  # SMTP is sending: a read token is no SMTP credential (535)
        raise InvalidToken(SERVER_TOKEN_MISSING)
    token_service.check_scope(use, method=request.method, path=request.url.path)
    request.state.server_id = server.id  # for the request's log line
    request.state.token_use = use  # for the audit log
    return server


async def require_account(request: Request, session: Session, settings: AppSettings) -> None:
    """Check `X-Postmark-Account-Token`: the ACCOUNT_TOKEN setting or a named account token (and its scope)."""
    use = await token_service.authenticate_account(
        session=session, token=request.headers.get(ACCOUNT_TOKEN_HEADER, ""), configured=settings.account_token, ip=_client_ip(request)
    )
    if use is None:
        raise InvalidToken(ACCOUNT_TOKEN_MISSING)
    token_service.check_scope(use, method=request.method, path=request.url.path)
    request.state.account_token_use = use  # for the audit log


# Token digest → the look-up running for it. When the one-second snapshot expires under load, every
# request in flight with that token missed it together and each ran the query (~14% of the event loop
# at 64 clients); now one does and the others wait for its answer. Only a found server is shared: a
# failure (no such token, a database error, the first request cancelled) gives the waiters None, and
# each of them looks up for itself, with its own error.
_LOOKUPS_IN_FLIGHT: dict[str, asyncio.Future[ServerSnapshot | None]] = {}


async def _look_up(request: Request, session: Session, digest: str) -> ServerSnapshot:
    future: asyncio.Future[ServerSnapshot | None] = asyncio.get_running_loop().create_future()
    _LOOKUPS_IN_FLIGHT[digest] = future
    try:
        server = await current_server(request, session)
        use: token_service.TokenUse = request.state.token_use
        snapshot = ServerSnapshot(
            id=server.id,
            track_opens=server.track_opens,
            track_links=server.track_links,
            delivery_type=server.delivery_type,
            smtp_api_activated=server.smtp_api_activated,
            token_id=use.id,
            token_name=use.name,
            scope=use.scope,
        )
        SERVER_SNAPSHOTS.put(digest, snapshot)
        # The snapshot is all a send needs of this read: end it, so that its connection is back in
        # the pool before intake's writers need one for the group this request waits on.
        await session.commit()
        future.set_result(snapshot)
        return snapshot
    finally:
        if not future.done():
            future.set_result(None)
        if _LOOKUPS_IN_FLIGHT.get(digest) is future:
            del _LOOKUPS_IN_FLIGHT[digest]


async def sending_server(request: Request, session: Session) -> ServerSnapshot | None:
    """The sending server's settings (cached for a second), or None for Postmark's test token
    (validate, send nothing)."""
    token = request.headers.get(SERVER_TOKEN_HEADER, "").strip()
    if token == TEST_TOKEN:
        return None
    digest = token_digest(token)
    snapshot = SERVER_SNAPSHOTS.get(digest)
    while snapshot is None:
        pending = _LOOKUPS_IN_FLIGHT.get(digest)
        if pending is None:
            snapshot = await _look_up(request, session, digest)
        else:  # another request of this process is reading the same token: share its answer
            snapshot = await asyncio.shield(pending)
    # A cached snapshot was made by a request that may have had another method or path.
    use = token_service.TokenUse(kind="server", id=snapshot.token_id, name=snapshot.token_name, scope=snapshot.scope)
    token_service.check_scope(use, method=request.method, path=request.url.path)
    request.state.server_id = snapshot.id  # for the request's log line
    request.state.token_use = use
    return snapshot


CurrentServer = Annotated[Server, Depends(current_server)]
SendingServer = Annotated[ServerSnapshot | None, Depends(sending_server)]
AccountAuth = Depends(require_account)
