"""Telling a database outage from a bug, and saying so once per interval instead of once per request."""

from __future__ import annotations

import logging
import time

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc

# Errors that mean "the database cannot be reached or is going away", not "this request is wrong".
_UNREACHABLE = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up, crashed
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    sa_exc.TimeoutError,  # the pool had no connection to give in time
)

RETRY_AFTER_SECONDS = 5


def database_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the database is out of reach."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.InterfaceError) and "connection" in str(current).lower() and "closed" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


class OutageLog:
    """One log line when an outage starts, one per `interval` while it lasts (with how many
    failures it stood for), one when it ends; never a traceback per failure."""

    def __init__(self, logger: logging.Logger, *, what: str, interval: float = 60.0) -> None:
        self.logger = logger
        self.what = what
        self.interval = interval
        self._since: float | None = None
        self._last = 0.0
        self._suppressed = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        summary = f"{type(error).__name__}: {error}"[:300]
        if self._since is None:
            self._since, self._last, self._suppressed = now, now, 0
            self.logger.error("%s: the database is unavailable (%s)", self.what, summary)
        elif now - self._last >= self.interval:
            self.logger.error(
                "%s: the database is still unavailable after %.0f s, %d failures since the last report (%s)",
                self.what,
                now - self._since,
                self._suppressed + 1,
                summary,
            )
            self._last, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def succeeded(self) -> None:
        if self._since is not None:
            self.logger.warning("%s: the database is reachable again after %.0f s", self.what, time.monotonic() - self._since)
            self._since = None
