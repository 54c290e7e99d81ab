"""Rate limits of the gateway.

What it knows of the API's rate limits: the server tokens it answered 429 for, and until when
(their `Retry-After`). A session whose token is on the list is refused at MAIL FROM with 421 4.7.0
and closed, instead of sending the API a message it would refuse.

And its own limits on the MX listener, which anyone may connect to: connections, messages and
bytes per client IP a minute (`ClientLimits`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network

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


# --- the MX listener's limits per client ------------------------------------------------------------

MAX_CLIENTS = 100_000
MINUTE = 60.0


def client_key(ip: str) -> str:
    """Whom a limit counts: an IPv4 address (also written IPv4-mapped), or an IPv6 /64 (one
    subscriber usually gets a whole /64, so counting single IPv6 addresses would count nothing)."""
    try:
        address = ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class PerMinute:
    """Limits per client a minute; 0: none."""

    connections: int
    messages: int
    bytes: int


@dataclass(slots=True)
class _Usage:
    at: float
    connections: float = 0.0
    messages: float = 0.0
    bytes: float = 0.0


class ClientLimits:
    """Connections, messages and bytes per client a minute, each a leaky bucket: a client may use a
    whole minute's worth at once, and gets it back evenly over the next minute.

    A refused connection or MAIL costs nothing; a DATA always costs its message and its bytes (they
    were received), and is refused when it takes the client over the limit. A message bigger than
    the bytes limit passes when the client has used nothing. Clients whose buckets are empty are
    forgotten (swept once a minute); past `max_clients` the table starts over rather than grow.
    Each method answers the whole seconds the client should wait, 0 when it may go on.
    """

    def __init__(self, limits: PerMinute, *, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS) -> None:
        self.limits = limits
        self.clock = clock
        self.max_clients = max_clients
        self._usage: dict[str, _Usage] = {}
        self._swept = clock()

    def connect(self, key: str) -> int:
        usage = self._current(key)
        wait = _wait(usage.connections, 1, self.limits.connections)
        if not wait:
            usage.connections += 1
        return wait

    def mail(self, key: str) -> int:
        """May the client start a message: a message left, and some bytes."""
        usage = self._current(key)
        return max(_wait(usage.messages, 1, self.limits.messages), _wait(usage.bytes, 1, self.limits.bytes))

    def data(self, key: str, size: int) -> int:
        usage = self._current(key)
        wait = max(_wait(usage.messages, 1, self.limits.messages), _wait(usage.bytes, size, max(self.limits.bytes, size)))
        if self.limits.messages:
            usage.messages += 1
        if self.limits.bytes:
            usage.bytes += size
        return wait

    def _current(self, key: str) -> _Usage:
        now = self.clock()
        if now - self._swept >= MINUTE:
            self._swept = now
            for stale in [k for k, u in self._usage.items() if self._drain(u, now)]:
                del self._usage[stale]
        usage = self._usage.get(key)
        if usage is None:
            if len(self._usage) >= self.max_clients:
                self._usage.clear()
            usage = self._usage[key] = _Usage(at=now)
        self._drain(usage, now)
        return usage

    def _drain(self, usage: _Usage, now: float) -> bool:
        """Give back what the time since the last call returns; True when nothing is left in use."""
        elapsed = max(0.0, now - usage.at)
        usage.at = now
        limits = self.limits
        usage.connections = max(0.0, usage.connections - elapsed * limits.connections / MINUTE)
        usage.messages = max(0.0, usage.messages - elapsed * limits.messages / MINUTE)
        usage.bytes = max(0.0, usage.bytes - elapsed * limits.bytes / MINUTE)
        return not (usage.connections or usage.messages or usage.bytes)

    def __len__(self) -> int:
        return len(self._usage)


def _wait(used: float, cost: float, limit: int) -> int:
    """Whole seconds until `cost` more fits under `limit` (0: now, or no limit)."""
    if not limit or used + cost <= limit:
        return 0
    return max(1, math.ceil((used + cost - limit) * MINUTE / limit))
