"""Per-token request limits, shared by every API process, cheap on the hot path, and failing open.

The buckets live in PostgreSQL (an UNLOGGED table) or in Redis (`REDIS_URL`); both run the same
GCRA step (`core.gcra`) atomically on the store's clock. A process does not ask the store for every
request: it takes a few tokens ahead (a *lease*, at most `RATE_LIMIT_LEASE_SECONDS` old, at most a
twentieth of the burst) sized by the rate of requests for that token since its last take, so a
busy token costs one round trip per batch of requests and a quiet one a round trip per request,
when it does not matter. Tokens a process took and did not use in time are lost, so the error is
on the side of refusing a little early, never of letting more through. A refused token is refused
locally until its `Retry-After` has passed, so a flood costs no round trips at all.

If the store cannot answer (down, or slower than `STORE_TIMEOUT`), the request goes through: a
limiter failure must never turn into a refused send. That is logged once a minute and counted in
`postgate_rate_limit_store_errors`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api_service.core import metrics
from api_service.core.gcra import Rate, Taken
from api_service.core.logs import Throttle
from api_service.core.wire import send_error
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER, ErrorCode

log = logging.getLogger("postgate.ratelimit")

STORE_TIMEOUT = 0.5
FAIL_OPEN_SECONDS = 1.0  # after a store failure, let requests through without asking for this long
LEASE_MAX = 100
LEASE_SHARE = 20  # a lease is at most burst / LEASE_SHARE tokens
MAX_KEYS = 10_000
# What the gateway and the MX listener call (AUTH checks, SMTP submissions, bounce reports, inbound
# mail) is limited in a bucket of its own per credential, far above a client's rate: the services'
# own traffic is never refused in normal use, while a leaked internal or account token cannot
# turn these routes into an unmetered way in.
INTERNAL_PREFIX = "/internal/"
SERVER_HEADER = SERVER_TOKEN_HEADER.lower().encode()
ACCOUNT_HEADER = ACCOUNT_TOKEN_HEADER.lower().encode()
AUTHORIZATION_HEADER = b"authorization"
ROUTE_KEY = "postgate.route"


class BucketStore(Protocol):
    """Where the buckets live; `take` is one atomic GCRA step on the store's clock."""

    name: str

    async def take(self, *, key: str, want: int, rate: Rate) -> Taken: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0


ALLOW = Decision(allowed=True)


@dataclass(slots=True)
class _Local:
    """This process' view of one bucket."""

    tokens: int = 0
    expires: float = 0.0
    blocked_until: float = 0.0
    demand: int = 0  # requests since the last take from the store
    since: float = 0.0  # when that take was
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Limiter:
    def __init__(self, *, store: BucketStore, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.throttle = Throttle(60.0)
        self._local: dict[str, _Local] = {}
        self._failing_until = 0.0

    def _want(self, local: _Local, rate: Rate, now: float) -> int:
        """Tokens to take: what this key's request rate since the last take would use in a lease."""
        if self.lease_seconds <= 0:
            return 1
        cap = max(1, min(LEASE_MAX, rate.burst // LEASE_SHARE))
        elapsed = now - local.since
        if elapsed <= 0:
            return cap
        return max(1, min(cap, math.ceil(local.demand * self.lease_seconds / elapsed)))

    @staticmethod
    def _spend(local: _Local, now: float) -> bool:
        if local.tokens > 0 and local.expires > now:
            local.tokens -= 1
            return True
        return False

    async def check(self, key: str, rate: Rate) -> Decision:
        """May one more request with this key go through now?"""
        local = self._local.get(key)
        if local is None:
            if len(self._local) >= MAX_KEYS:
                self._local.clear()
            local = self._local[key] = _Local()
        local.demand += 1
        now = self.clock()
        if local.blocked_until > now:
            return Decision(allowed=False, retry_after=max(1, int(local.blocked_until - now + 0.999)))
        if self._spend(local, now):
            return ALLOW
        if self._failing_until > now:
            return ALLOW
        async with local.lock:
            # Another request may have taken a lease, or been refused, while this one waited.
            now = self.clock()
            if local.blocked_until > now:
                return Decision(allowed=False, retry_after=max(1, int(local.blocked_until - now + 0.999)))
            if self._spend(local, now):
                return ALLOW
            want = self._want(local, rate, now)
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    taken = await self.store.take(key=key, want=want, rate=rate)
            except Exception as exc:  # fail open: a limiter problem must not refuse a send
                self._failing_until = self.clock() + FAIL_OPEN_SECONDS
                metrics.RATE_LIMIT_STORE_ERRORS.inc()
                self.throttle.log(
                    log,
                    logging.WARNING,
                    "store",
                    "rate limit store (%s) unavailable, letting requests through: %s",
                    self.store.name,
                    f"{type(exc).__name__}: {exc}"[:300],
                    store=self.store.name,
                )
                return ALLOW
            now = self.clock()
            local.demand, local.since = 0, now
            if taken.granted == 0:
                local.tokens = 0
                local.blocked_until = now + taken.wait(rate) / 1_000_000
                return Decision(allowed=False, retry_after=taken.retry_after_seconds(rate))
            local.tokens = taken.granted - 1
            local.expires = now + self.lease_seconds
            return ALLOW

    async def close(self) -> None:
        await self.store.close()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What the middleware needs: the limiter and the rate of each kind of token."""

    limiter: Limiter
    server: Rate
    account: Rate
    internal: Rate

    def rate(self, kind: str) -> Rate:
        return self.server if kind == "server" else self.internal if kind == "internal" else self.account


def bucket_key(kind: str, token: bytes) -> str:
    """Tokens are case-insensitive; the key holds a digest of the token, never the token."""
    return f"{kind}:{hashlib.blake2b(token.strip().lower(), digest_size=16).hexdigest()}"


def token_of(scope: Scope) -> tuple[str, bytes] | None:
    """The kind of credential a request is limited by, and the credential."""
    if scope["path"].startswith(INTERNAL_PREFIX):
        # The credential an internal route checks: the Bearer token, else the account token.
        found: bytes | None = None
        for name, value in scope["headers"]:
            if name == AUTHORIZATION_HEADER or (name == ACCOUNT_HEADER and found is None):
                found = value
        return ("internal", found) if found is not None else None
    account: bytes | None = None
    for name, value in scope["headers"]:
        if name == SERVER_HEADER:
            return "server", value
        if name == ACCOUNT_HEADER:
            account = value
    return ("account", account) if account is not None else None


def route_template(scope: Scope) -> str:
    """The template of the route a request would reach (for a refused request: routing did not run)."""
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class RateLimitMiddleware:
    """Refuse a request over its token's limit before routing: HTTP 429, Postmark's envelope
    (ErrorCode 429, its legacy code for this), and `Retry-After`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits: RateLimits | None = getattr(scope["app"].state, "rate_limits", None)
        found = token_of(scope) if limits is not None else None
        if limits is None or found is None:
            await self.app(scope, receive, send)
            return
        kind, token = found
        decision = await limits.limiter.check(bucket_key(kind, token), limits.rate(kind))
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        metrics.RATE_LIMITED.labels(kind).inc()
        scope.setdefault("state", {})[ROUTE_KEY] = route_template(scope)
        await send_error(
            send,
            429,
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"Rate limit exceeded: too many requests with this {kind} token. Retry after {decision.retry_after} seconds.",
            headers=[(b"retry-after", str(decision.retry_after).encode())],
        )
