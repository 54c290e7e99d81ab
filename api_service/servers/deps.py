"""Authentication dependencies: the server token and the account token."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from api_service.deps import AppSettings, Session
from api_service.errors import InvalidToken
from api_service.models import Server
from api_service.servers import repository
from api_service.servers.cache import SERVER_SNAPSHOTS, ServerSnapshot
from api_service.servers.tokens import same_token, token_digest
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER

TEST_TOKEN = "POSTMARK_API_TEST"  # noqa: S105 - Postmark's public test token, not a secret
SERVER_TOKEN_MISSING = "Request does not contain a valid Server token. Please check that the X-Postmark-Server-Token header is set."  # noqa: S105 - a message, not a secret
ACCOUNT_TOKEN_MISSING = "Request does not contain a valid Account token. Please check that the X-Postmark-Account-Token header is set."  # noqa: S105 - a message, not a secret


async def current_server(request: Request, session: Session) -> Server:
    """The server whose token is in `X-Postmark-Server-Token`."""
    token = request.headers.get(SERVER_TOKEN_HEADER, "")
    if not token:
        raise InvalidToken(SERVER_TOKEN_MISSING)
    server = await repository.get_server_by_token_digest(session=session, digest=token_digest(token))
    if server is None:
        raise InvalidToken(SERVER_TOKEN_MISSING)
    request.state.server_id = server.id  # for the request's log line
    return server


def require_account(request: Request, settings: AppSettings) -> None:
    """Check `X-Postmark-Account-Token` against the configured account token."""
    if not same_token(request.headers.get(ACCOUNT_TOKEN_HEADER, ""), settings.account_token):
        raise InvalidToken(ACCOUNT_TOKEN_MISSING)


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
        snapshot = ServerSnapshot(
            id=server.id,
            track_opens=server.track_opens,
            track_links=server.track_links,
            delivery_type=server.delivery_type,
            smtp_api_activated=server.smtp_api_activated,
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
    request.state.server_id = snapshot.id  # for the request's log line
    return snapshot


CurrentServer = Annotated[Server, Depends(current_server)]
SendingServer = Annotated[ServerSnapshot | None, Depends(sending_server)]
AccountAuth = Depends(require_account)
