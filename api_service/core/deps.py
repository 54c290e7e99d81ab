"""Request-scoped dependencies: the database session (committed by the route) and the tokens."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.errors import InvalidToken
from api_service.models import Server
from api_service.servers import repository as servers_repo
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER


def token_digest(token: str) -> str:
    """Tokens are kept as SHA-256 digests; header values are case-insensitive in Postmark."""
    return hashlib.sha256(token.strip().lower().encode()).hexdigest()


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncSession:
    """The request's session; `TransactionalRoute` commits it before the response leaves."""
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is None:
        session = request.app.state.sessionmaker()
        request.state.db_session = session
    return session


class TransactionalRoute(APIRoute):
    """Commit exactly once, after the endpoint returned and before the response is sent.

    FastAPI runs the exit code of `yield` dependencies after the response has been built, so a
    failing commit there would still let a 200 through; committing here turns it into a 500.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def commit_then_respond(request: Request) -> Response:
            try:
                response = await handler(request)
                session: AsyncSession | None = getattr(request.state, "db_session", None)
                if session is not None:
                    await session.commit()
                return response
            finally:
                session = getattr(request.state, "db_session", None)
                if session is not None:
                    await session.close()

        return commit_then_respond


Session = Annotated[AsyncSession, Depends(get_session)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


async def current_server(request: Request, session: Session) -> Server:
    """The server whose token is in `X-Postmark-Server-Token`."""
    token = request.headers.get(SERVER_TOKEN_HEADER, "")
    if not token:
        raise InvalidToken("Request does not contain a valid Server token. Please check that the X-Postmark-Server-Token header is set.")
    server = await servers_repo.get_server_by_token_digest(session=session, digest=token_digest(token))
    if server is None:
        raise InvalidToken("Request does not contain a valid Server token. Please check that the X-Postmark-Server-Token header is set.")
    return server


def require_account(request: Request, settings: AppSettings) -> None:
    """Check `X-Postmark-Account-Token` against the configured account token."""
    token = request.headers.get(ACCOUNT_TOKEN_HEADER, "")
    expected = settings.account_token
    if not token or not expected or not hmac.compare_digest(token_digest(token), token_digest(expected)):
        raise InvalidToken("Request does not contain a valid Account token. Please check that the X-Postmark-Account-Token header is set.")


CurrentServer = Annotated[Server, Depends(current_server)]
AccountAuth = Depends(require_account)
