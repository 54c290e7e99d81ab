"""Group commit for background writers: outcomes that become known while a commit is under way are
written together in the next transaction, and each caller is answered once its own is committed.

A worker that records every send in its own transaction pays a BEGIN, a synchronous COMMIT and a
round trip per statement for each one; sharing the transaction pays them once per group. The caller
still waits for its commit, so whatever it holds (a lease, a concurrency slot) stays held until its
outcome is durable, exactly as with one transaction each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("postgate.groupcommit")


class GroupCommit(Generic[T]):
    """`write(item)` returns once `together` has committed a group holding `item`.

    `together(items)` writes a group in one transaction; should it raise, `alone(item)` is called for
    each item of that group (concurrently), so that one item that cannot be written holds back no
    other. `alone` handles its own failures (retries, logging); what it raises is logged.
    """

    def __init__(self, *, together: Callable[[list[T]], Awaitable[None]], alone: Callable[[T], Awaitable[None]], what: str) -> None:
        self.together = together
        self.alone = alone
        self.what = what
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        await done

    async def close(self) -> None:
        """Stop a flush still running (its callers were cancelled: the worker is stopping)."""
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing

    async def _flush(self) -> None:
        group: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._pending:
                # One turn of the loop first: replies that arrived together join this transaction.
                await asyncio.sleep(0)
                group, self._pending = self._pending, []
                items = [item for item, _ in group]
                try:
                    await self.together(items)
                except Exception:
                    log.warning("writing %d %s together failed; writing each alone", len(items), self.what, exc_info=True)
                    results = await asyncio.gather(*(self.alone(item) for item in items), return_exceptions=True)
                    for result in results:
                        if isinstance(result, Exception):
                            log.error("writing %s failed", self.what, exc_info=result)
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
                group = []
        finally:
            self._flushing = None
            for _, done in group + self._pending:
                if not done.done():
                    done.cancel()
