"""What the gateway knows of the API's rate limits: the server tokens it answered 429 for, and
until when (their `Retry-After`). A session whose token is on the list is refused at MAIL FROM with
421 4.7.0 and closed, instead of sending the API a message it would refuse."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_TOKENS = 10_000


class RateLimitedTokens:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}

    def note(self, token: str, retry_after: float) -> None:
        if len(self._until) >= MAX_TOKENS:
            self._until.clear()
        self._until[token] = self.clock() + max(1.0, retry_after)

    def remaining(self, token: str) -> int:
        """Whole seconds until the API takes this token's messages again (0: now)."""
        until = self._until.get(token)
        if until is None:
            return 0
        left = until - self.clock()
        if left <= 0:
            del self._until[token]
            return 0
        return math.ceil(left)


def parse_retry_after(value: str | None) -> float:
    """`Retry-After` in seconds (the API sends delta-seconds); 1 when missing or unreadable."""
    try:
        return max(1.0, float(value or ""))
    except ValueError:
        return 1.0
