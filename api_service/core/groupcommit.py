"""Group commit: writes that arrive while a commit is under way share the next transaction, and each
caller is answered with its own answer once that transaction has committed.

A writer that stores every item in its own transaction pays a BEGIN, a synchronous COMMIT (an fsync)
and a round trip per statement for each one; sharing the transaction pays them once per group. Under
light load a writer task takes an item at once, so a lone caller waits for nothing; under load the
items that arrive while the writers are committing form the next group, so the commits per second
stay about constant while the items per commit grow. The `writers` tasks also bound the database work
of the callers: at most that many connections, however many callers wait.

The failure contract (the same for every caller; tested once, in tests/api/core/test_groupcommit.py
and tests/api/email/test_intake.py):

- `write(session, items)` returns one answer per item. An answer that is an exception (a message the
  rules refuse: its `PostmarkError`) is raised in that item's caller only; the others get their own.
- Should `write` raise for the group (a statement fails, an item that cannot be stored), the group is
  written again member by member in the same transaction, each member in a savepoint: the member that
  fails gets its own exception and leaves nothing behind; its neighbours are stored and answered as
  if it had not been there.
- Should the COMMIT fail (a deferred constraint, a lost connection), every member of the group gets
  that exception and nothing of the group is stored. It is never retried here: after a lost
  connection nobody knows whether the COMMIT happened, and a second try could store it twice. A
  caller that must record its item anyway (a delivery outcome) does so on its own.
- A caller cancelled before its group is written is left out of it; one cancelled while its group is
  being written is written with it (its answer is dropped). Closing the engine cancels the callers
  still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("postgate.groupcommit")

Write = Callable[[AsyncSession, list[T]], Awaitable[Sequence[R | Exception]]]


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    answer: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[T, R]):
    """`await submit(item)` returns `item`'s answer (or raises its exception) once the transaction that
    wrote it has committed (see the module docstring for what a caller gets when something fails).

    `writers=0` writes each item in its own transaction, in its caller's task (no grouping);
    `max_items=0` puts no bound on a group; `window_seconds` waits that long for more items before a
    group is written (0: only what is queued after one turn of the event loop).
    """

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        write: Write[T, R],
        what: str,
        writers: int = 1,
        max_items: int = 0,
        window_seconds: float = 0.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._write = write
        self.what = what
        self._writers = writers
        self._max_items = max_items
        self._window_seconds = window_seconds
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, item: T) -> R:
        pending: _Pending[T, R] = _Pending(item)
        if self._writers == 0:
            await self._commit([pending])
        else:
            if not self._tasks or all(t.done() for t in self._tasks):
                self._tasks = [
                    asyncio.create_task(self._write_forever(), name=f"groupcommit-{self.what}-{i}") for i in range(self._writers)
                ]
            self._queue.put_nowait(pending)
        return await pending.answer

    async def close(self, *, drain_seconds: float = 0.0) -> None:
        """Let the writers finish what is queued (for up to `drain_seconds`), then stop them; a caller
        still waiting is cancelled."""
        if drain_seconds > 0 and any(not t.done() for t in self._tasks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=drain_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            self._queue.get_nowait().answer.cancel()
            self._queue.task_done()

    async def _write_forever(self) -> None:
        while True:
            group = [await self._queue.get()]
            # Items that arrive in the same turn of the event loop (or within the window) join this group.
            await asyncio.sleep(self._window_seconds)
            while (not self._max_items or len(group) < self._max_items) and not self._queue.empty():
                group.append(self._queue.get_nowait())
            live = [p for p in group if not p.answer.done()]  # a caller cancelled meanwhile is left out
            try:
                if live:
                    await self._commit(live)
            except Exception as exc:  # a bug in the writer: its callers hear of it, the writer goes on
                log.exception("writing %d %s failed", len(live), self.what)
                for pending in live:
                    if not pending.answer.done():
                        pending.answer.set_exception(exc)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit(self, group: list[_Pending[T, R]]) -> None:
        try:
            async with self._sessionmaker() as session:
                items = [p.item for p in group]
                try:
                    answers = list(await self._write(session, items))
                except Exception as exc:
                    await session.rollback()
                    if len(items) == 1:
                        answers = [exc]
                    else:
                        log.warning("writing %d %s together failed; each in a savepoint", len(items), self.what, exc_info=True)
                        answers = await member_by_member(session=session, items=items, write=self._write)
                await session.commit()
        except asyncio.CancelledError:
            for pending in group:
                pending.answer.cancel()
            raise
        except Exception as exc:
            # The COMMIT (or the rollback before the member-by-member pass) failed: nothing of this
            # group is stored, and every member of it hears so.
            for pending in group:
                if not pending.answer.done():
                    pending.answer.set_exception(exc)
            return
        for pending, answer in zip(group, answers, strict=True):
            if pending.answer.done():
                continue
            if isinstance(answer, Exception):
                pending.answer.set_exception(answer)
            else:
                pending.answer.set_result(answer)


async def member_by_member(*, session: AsyncSession, items: list[T], write: Write[T, R]) -> list[R | Exception]:
    """Each item written in a savepoint of its own: the one that fails gets its exception and leaves
    nothing behind, the others are written."""
    answers: list[R | Exception] = []
    for item in items:
        try:
            async with session.begin_nested():
                [answer] = await write(session, [item])
        except Exception as exc:
            answer = exc
        answers.append(answer)
    return answers


async def write_in(*, session: AsyncSession, items: list[T], write: Write[T, R]) -> list[R | Exception]:
    """The same contract inside a transaction that the caller owns (and commits): the group is tried
    in one savepoint (two round trips, not two per item), then member by member."""
    try:
        async with session.begin_nested():
            return list(await write(session, items))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        log.info("writing %d items together failed; writing each in a savepoint", len(items), exc_info=True)
    return await member_by_member(session=session, items=items, write=write)
