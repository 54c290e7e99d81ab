"""Group commit for single sends: concurrent `POST /email` requests of one process share one transaction.

Each request used to pay its own BEGIN, three statements and a synchronous COMMIT (an fsync). Here a
request hands its message to a `GroupCommitter` and waits; a few writer tasks each take every message
that is waiting (up to `max_messages`), run them through `service.accept` (the same intake as a batch,
one call per sending server) in one transaction, commit, and only then answer each request with its own
result. Under light load a writer takes a message at once, so a lone request waits for nothing; under
load the messages that arrive while the writers are committing form the next group, so the number of
commits per second stays about constant while the messages per commit grow.

The writers also bound the database work of single sends per process: at most `writers` connections,
however many clients there are; excess requests wait in the queue, not for a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.email import service
from api_service.email.message import OutgoingMessage
from api_service.errors import PostmarkError

log = logging.getLogger("postgate.api")

Outcome = service.Accepted | PostmarkError
CLOSE_TIMEOUT_SECONDS = 10.0


@dataclass(slots=True)
class _Pending:
    server: service.SendingServer
    message: OutgoingMessage
    answer: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitter:
    """Gathers the single sends of one process into shared transactions (see the module docstring)."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        message_id_domain: str,
        writers: int,
        max_messages: int,
        window_seconds: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._message_id_domain = message_id_domain
        self._writers = writers
        self._max_messages = max_messages
        self._window_seconds = window_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_forever(), name=f"email-group-commit-{i}") for i in range(self._writers)]

    async def close(self) -> None:
        """Let the writers finish what is queued, then stop them."""
        if any(not t.done() for t in self._tasks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=CLOSE_TIMEOUT_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def accept(self, *, server: service.SendingServer, message: OutgoingMessage) -> Outcome:
        """Store one message with the others of its group; returns after the group's COMMIT.

        A message the rules refuse comes back as its `PostmarkError` (its neighbours are stored); a
        failing transaction raises its exception here, in every request of the group.
        """
        if not self._tasks or all(t.done() for t in self._tasks):
            raise RuntimeError("the group committer is not running")
        pending = _Pending(server=server, message=message)
        self._queue.put_nowait(pending)
        return await pending.answer

    async def _write_forever(self) -> None:
        while True:
            group = [await self._queue.get()]
            if self._window_seconds > 0:
                await asyncio.sleep(self._window_seconds)
            else:
                # Requests parsed in the same turn of the event loop join this group.
                await asyncio.sleep(0)
            while len(group) < self._max_messages and not self._queue.empty():
                group.append(self._queue.get_nowait())
            taken = len(group)
            try:
                live = [p for p in group if not p.answer.done()]  # a request that was cancelled meanwhile
                if live:
                    await self._write(live)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _write(self, group: list[_Pending]) -> None:
        """One transaction for the group; a server whose intake refuses everything (deleted after its
        token was cached) is answered with that error and the rest is written again without it."""
        while group:
            failed_server: int | None = None
            try:
                async with self._sessionmaker() as session:
                    outcomes: list[tuple[_Pending, Outcome]] = []
                    for server_id in dict.fromkeys(p.server.id for p in group):
                        members = [p for p in group if p.server.id == server_id]
                        failed_server = server_id
                        results = await service.accept(
                            session=session,
                            server=members[0].server,
                            items=[p.message for p in members],
                            policy=service.Policy.REJECT,
                            message_id_domain=self._message_id_domain,
                        )
                        failed_server = None
                        outcomes.extend(zip(members, results, strict=True))
                    await session.commit()
            except PostmarkError as exc:
                if failed_server is None:  # not from one server's intake: every request gets it
                    _fail(group, exc)
                    return
                _fail([p for p in group if p.server.id == failed_server], exc)
                group = [p for p in group if p.server.id != failed_server]
                continue
            except asyncio.CancelledError:
                _fail(group, RuntimeError("the API is shutting down"))
                raise
            except Exception as exc:
                # The COMMIT (or a statement) failed: nothing of this group is stored, and every
                # request of it is answered with the same error as a single send would be.
                _fail(group, exc)
                return
            for pending, outcome in outcomes:
                if not pending.answer.done():
                    pending.answer.set_result(outcome)
            return


def _fail(group: list[_Pending], exc: BaseException) -> None:
    for pending in group:
        if not pending.answer.done():
            pending.answer.set_exception(exc)
