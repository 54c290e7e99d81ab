"""The one way a console form changes something.

A POST calls one service function. When the domain refuses (a `PostmarkError`), everything the
attempt wrote is rolled back and the same page is rendered again with the domain's message, so the
request commits nothing; otherwise the browser is redirected (303) to a page that shows the change,
with a notice. The page's server is read again after the rollback, because a rollback expires every
row the session loaded and the page must not lazy-load in an async session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.servers import service as servers_service

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refused:
    """A change the domain refused: its message, its HTTP status, and the page's server read again."""

    message: str
    status: int
    reloaded: Server | None = None

    @property
    def server(self) -> Server:
        if self.reloaded is None:
            raise RuntimeError("submit() was not given the page's server")
        return self.reloaded


async def submit(
    *,
    session: AsyncSession,
    change: Callable[[], Awaitable[T]],
    done: Callable[[T], Response | Awaitable[Response]],
    refused: Callable[[Refused], Awaitable[Response]],
    server: Server | None = None,
) -> Response:
    """Run `change`; answer with `done(result)`, or after a refusal roll back and answer `refused(...)`."""
    server_id = server.id if server is not None else None  # read now: the rollback expires the row
    try:
        result = await change()
    except PostmarkError as exc:
        await session.rollback()
        reloaded = None if server_id is None else await servers_service.get_server_or_raise(session=session, server_id=server_id)
        return await refused(Refused(message=exc.message, status=exc.http_status, reloaded=reloaded))
    answer = done(result)
    return await answer if isinstance(answer, Awaitable) else answer
