"""What rendering a template may spend, and where it runs: on the event loop while it stays small, else in a thread.

Work is counted, not guessed from sizes: a rendering spends one unit per node it renders (a node inside an
`{{#each}}` once per element), one per loop iteration and one per step of a dotted path, and its output is counted
in characters. A model comes with the request, so a 100-byte template can loop a billion times, and a template of
20,000 tags inside one loop does 20,000 units of work per element: the budget sees both.

`run_budgeted(step)` runs a pure step (render a message, validate a template, expand a bulk batch) first on the
event loop with the small `Budget.on_the_loop()` (`LOOP_WORK` units, `LOOP_CHARS` characters, parsing and CSS
inlining counted by the size of what they read). Nearly every send fits, and pays no thread hop. A step that
outgrows it raises `OffloadNeeded` and runs again, from the start, in a thread with the full budget of each
message (`MAX_RENDER_WORK` units, `MAX_OUTPUT_CHARS` characters) and one deadline for the whole step
(`RENDER_SECONDS`), which a message checks once it has spent `CLOCK_EVERY` units: small messages never fail on
time, a heavy one past the deadline fails with TemplateRenderError (ErrorCode 1122 on a send).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from api_service.templates.mustachio_syntax import (
    CLOCK_EVERY,
    CSS_CHARS_PER_UNIT,
    LOOP_CHARS,
    LOOP_WORK,
    MAX_OUTPUT_CHARS,
    MAX_RENDER_WORK,
    PARSE_CHARS_PER_UNIT,
    RENDER_SECONDS,
    TOO_MUCH_OUTPUT,
    TOO_MUCH_WORK,
    TOO_SLOW,
    TemplateRenderError,
)

T = TypeVar("T")


class OffloadNeeded(Exception):
    """An on-loop attempt outgrew `Budget.on_the_loop()`: the step runs again in a thread."""


class Budget:
    """What one message's renderings (subject, bodies, layout) may still spend; on the loop, what the whole step may."""

    __slots__ = ("chars", "checkpoint", "deadline", "max_chars", "max_work", "on_loop", "work")

    def __init__(
        self, *, max_work: int = MAX_RENDER_WORK, max_chars: int = MAX_OUTPUT_CHARS, deadline: float | None = None, on_loop: bool = False
    ) -> None:
        self.max_work = max_work
        self.max_chars = max_chars
        self.deadline = deadline
        self.on_loop = on_loop
        self.work = 0
        self.chars = 0
        self.checkpoint = min(max_work, CLOCK_EVERY) if deadline is not None else max_work

    @classmethod
    def on_the_loop(cls) -> Budget:
        return cls(max_work=LOOP_WORK, max_chars=LOOP_CHARS, on_loop=True)

    @classmethod
    def in_a_thread(cls, seconds: float = RENDER_SECONDS) -> Budget:
        return cls(deadline=time.monotonic() + seconds)

    def for_message(self) -> Budget:
        """A fresh budget for the next message of the step (same deadline); on the loop, the step's own one."""
        if self.on_loop:
            return self
        return Budget(max_work=self.max_work, max_chars=self.max_chars, deadline=self.deadline)

    def _over(self, message: str) -> Exception:
        return OffloadNeeded() if self.on_loop else TemplateRenderError(message)

    def spend(self, units: int) -> None:
        """Rendering work: past `max_work`, or past the deadline at a checkpoint, the rendering stops."""
        self.work += units
        if self.work > self.checkpoint:
            if self.work > self.max_work:
                raise self._over(TOO_MUCH_WORK)
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise TemplateRenderError(TOO_SLOW)
            self.checkpoint = min(self.max_work, self.work + CLOCK_EVERY)

    def write(self, chars: int) -> None:
        """Output: past `max_chars` the rendering stops."""
        self.chars += chars
        if self.chars > self.max_chars:
            raise self._over(TOO_MUCH_OUTPUT)

    def parse(self, chars: int) -> None:
        """Parsing `chars` characters of source. Bounded by `MAX_TAGS`, so it only decides where the step runs."""
        if self.on_loop:
            self.spend(chars // PARSE_CHARS_PER_UNIT)

    def inline_css(self, chars: int) -> None:
        """CSS inlining of `chars` characters of HTML. Bounded by the output cap, so it only decides where the step runs."""
        if self.on_loop:
            self.spend(chars // CSS_CHARS_PER_UNIT)


async def run_budgeted(step: Callable[[Budget], T]) -> T:
    """`step(budget)` on the loop when it fits `Budget.on_the_loop()`, else again in a thread with the full budget.

    `step` must be pure (it may run twice, the first time cut short).
    """
    try:
        return step(Budget.on_the_loop())
    except OffloadNeeded:
        pass
    return await asyncio.to_thread(lambda: step(Budget.in_a_thread()))
