"""Request-scoped dependencies: the database session (committed by the route) and the settings."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.core.errors import DATABASE_OUTAGE


async def get_settings_dep(request: Request) -> Settings:
    # async although it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a
    # thread hop on every request that showed in the send path's profile.
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncSession:
    """The request's session; `TransactionalRoute` commits it before the response leaves."""
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is None:
        session = request.app.state.sessionmaker()
        request.state.db_session = session
    return session


CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The audit log's recorder (`audit.http.record_request`, set by main): called with the request, its
# session and the response before the commit, so that a change and its record commit together.
AuditHook = Callable[[Request, AsyncSession, Response], Coroutine[Any, Any, None]]


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
                audit = getattr(request.app.state, "audit_hook", None)
                if audit is not None and request.method in CHANGING:
                    await audit(request, await get_session(request), response)
                session: AsyncSession | None = getattr(request.state, "db_session", None)
                if session is not None:
                    used = session.in_transaction()
                    await session.commit()
                    if used:  # a COMMIT went through: an outage being reported is over
                        DATABASE_OUTAGE.succeeded()
                return response
            finally:
                session = getattr(request.state, "db_session", None)
                if session is not None:
                    await session.close()

        return commit_then_respond


Session = Annotated[AsyncSession, Depends(get_session)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
