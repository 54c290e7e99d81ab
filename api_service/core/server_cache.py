"""A one-second cache of token → sending settings for the send path.

Looking the token up is a round trip and an ORM load per message; a burst of sends with one
token needs it once a second. Edits and deletes clear this process' cache at once; another worker
process may use the old settings for up to `TTL` seconds (a deleted server's send then fails with
401, see email.service).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000


class TtlCache(Generic[T]):
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
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


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """The settings of a server that sending reads."""

    id: int
    track_opens: bool
    track_links: str
    delivery_type: str


# Token digest → its server's sending settings.
SERVER_SNAPSHOTS: TtlCache[ServerSnapshot] = TtlCache()
