"""Gathering the requests of concurrent connections into one API call.

Every message costs the API a transaction and its commit, and every AUTH a request of its own; the
ones that arrive while another call is under way are handed over together (messages committed
together). With nothing in flight a message
leaves at once (no added wait when idle); under load the next call waits `window` seconds for its
batch to fill, or leaves as soon as it is full. Each submitter gets its own outcome, and only after
the call has answered, that is after the transaction holding its message committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

log = logging.getLogger("postgate.smtp")

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_messages: int
    max_bytes: int
    max_in_flight: int
    window: float  # seconds a call waits for company while another one is in flight


class Batcher(Generic[In, Out]):
    """`submit(item)` answers with what `send` said about that item; `send` takes a list and
    returns one answer per item, in order. `failed` is every item's answer when `send` raises."""

    def __init__(
        self,
        *,
        send: Callable[[list[In]], Awaitable[list[Out]]],
        failed: Callable[[str], Out],
        limits: BatchLimits,
        size: Callable[[In], int],
        observed: Histogram,
    ) -> None:
        self._send = send
        self._failed = failed
        self._limits = limits
        self._size = size
        self._observed = observed
        self._pending: deque[tuple[In, asyncio.Future[Out]]] = deque()
        self._pending_bytes = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        if self._pending and self._pending_bytes + self._size(item) > self._limits.max_bytes:
            self._flush()  # a big message does not join a batch it would push over the size cap
        self._pending.append((item, future))
        self._pending_bytes += self._size(item)
        if not self._in_flight or len(self._pending) >= self._limits.max_messages:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._limits.window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Beyond the in-flight cap, messages wait for a call to come back (and then all leave).
        while self._pending and len(self._in_flight) < self._limits.max_in_flight:
            batch: list[tuple[In, asyncio.Future[Out]]] = []
            size = 0
            while self._pending and len(batch) < self._limits.max_messages:
                if self._pending[0][1].done():  # its client went away while it waited: not sent
                    self._pending_bytes -= self._size(self._pending.popleft()[0])
                    continue
                item_size = self._size(self._pending[0][0])
                if batch and size + item_size > self._limits.max_bytes:
                    break
                batch.append(self._pending.popleft())
                size += item_size
            self._pending_bytes -= size
            if not batch:
                break
            self._observed.observe(len(batch))
            task = asyncio.get_running_loop().create_task(self._call(batch))
            self._in_flight.add(task)

    async def _call(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            outcomes = await self._send([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise ValueError(f"{len(outcomes)} outcomes for {len(batch)} messages")
        except Exception as exc:  # a bug must cost a retry (451), never a hung client
            log.error("handing a batch to the API failed: %s", type(exc).__name__, exc_info=exc)
            outcomes = [self._failed(type(exc).__name__)] * len(batch)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # the client may have gone away meanwhile
                future.set_result(outcome)
        if self._pending:
            self._flush()

    async def aclose(self) -> None:
        """Let the calls under way finish, so their submitters hear the outcome."""
        if self._in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._in_flight, return_exceptions=True), timeout=10)
