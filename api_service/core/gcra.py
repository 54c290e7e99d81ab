"""The Generic Cell Rate Algorithm (a token bucket kept as one number): pure, in integer microseconds.

A bucket holds `burst` tokens and gains one every `interval` microseconds. Its whole state is the
theoretical arrival time `tat`: the bucket is full when `tat <= now`, and
`burst - max(0, tat - now) / interval` tokens are left. Taking `n` tokens moves `tat` forward by
`n * interval`. Integers keep Python, PostgreSQL (`bigint`) and Redis (Lua doubles, exact below
2**53) in exact agreement; the SQL and the Lua script in `operations.repository` are this function
written again, and the tests hold them to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MICROSECONDS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` tokens a second, up to `burst` at once."""

    per_second: float
    burst: int

    @property
    def interval(self) -> int:
        """Microseconds between two tokens."""
        return max(1, round(MICROSECONDS / self.per_second))

    @property
    def capacity(self) -> int:
        """Microseconds of credit a full bucket holds."""
        return self.burst * self.interval


@dataclass(frozen=True, slots=True)
class Taken:
    """What a take did: tokens granted (0 to `want`), the new `tat`, and the clock it used."""

    granted: int
    tat: int
    now: int

    def wait(self, rate: Rate) -> int:
        """Microseconds until one more token is there (0 if there is one now)."""
        return max(0, self.tat + rate.interval - rate.capacity - self.now)

    def retry_after_seconds(self, rate: Rate) -> int:
        """`Retry-After` for a refused request: whole seconds, at least 1."""
        return max(1, math.ceil(self.wait(rate) / MICROSECONDS))


def take(*, tat: int | None, now: int, want: int, rate: Rate) -> Taken:
    """Take up to `want` tokens from the bucket whose state is `tat` (None: never used, full)."""
    base = now if tat is None else max(tat, now)
    available = (now + rate.capacity - base) // rate.interval
    granted = max(0, min(want, available))
    return Taken(granted=granted, tat=base + granted * rate.interval, now=now)
