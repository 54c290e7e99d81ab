"""A small time-to-live cache for per-process look-ups on hot paths."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 10_000


class TtlCache(Generic[T]):
    """Entries expire `ttl` seconds after they were put; a full cache starts over (no LRU
    bookkeeping on the hot path)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, T]] = {}

    def get(self, key: str) -> T | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: T) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()
