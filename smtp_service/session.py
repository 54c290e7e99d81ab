"""aiosmtpd's protocol, observed: metrics and one log line per SMTP session, and the connection-level
answers: to a rate-limited server (421 4.7.0 at MAIL FROM), and to a client the listener does not
admit (421 instead of the greeting, the MX listener's per-IP limit).

The counts come from the replies the gateway actually sent (`push`): whatever hook or aiosmtpd
itself produced a reply, it is counted by what the client was told. The line names the peer, never
the token (`session.auth_data`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, syntax

from smtp_service import metrics
from smtp_service.ratelimit import RateLimitedTokens

log = logging.getLogger("postgate.smtp.session")


def data_result(reply: str) -> str:
    """What the final reply to DATA meant for the message."""
    if reply.startswith("2"):
        return "accepted"
    if reply.startswith("451 4.7.1"):
        return "rate_limited"
    if reply.startswith("4"):
        return "deferred"
    return "rejected"


class ObservedSMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        rate_limited: RateLimitedTokens | None = None,
        admit: Callable[[str], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.rate_limited = rate_limited
        self.admit = admit
        self._started = 0.0
        self._open = False
        self._peer = ""
        self._tls = False
        self._auth = "none"
        self._messages: Counter[str] = Counter()
        self._data_started: float | None = None
        self._result = "closed"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        upgrade = self.transport is not None  # STARTTLS calls this again on the same connection
        super().connection_made(transport)
        if upgrade:
            self._tls = True
            return
        self._open = True
        self._started = time.monotonic()
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        self._tls = transport.get_extra_info("sslcontext") is not None
        metrics.SESSIONS.inc()
        metrics.SESSIONS_ACTIVE.inc()

    def connection_lost(self, error: Exception | None) -> None:
        failures = int(getattr(self.session, "postgate_auth_failures", 0)) if self.session is not None else 0
        super().connection_lost(error)
        if not self._open:
            return
        self._open = False
        metrics.SESSIONS_ACTIVE.dec()
        seconds = time.monotonic() - self._started
        counts = {k: self._messages.get(k, 0) for k in ("accepted", "deferred", "rate_limited", "rejected")}
        log.info(
            "session %s tls=%s auth=%s messages=%d accepted=%d deferred=%d rate_limited=%d rejected=%d result=%s %.0fms",
            self._peer,
            "yes" if self._tls else "no",
            self._auth,
            sum(counts.values()),
            *counts.values(),
            self._result,
            seconds * 1000,
            extra={
                "peer": self._peer,
                "tls": self._tls,
                "auth": self._auth,
                "auth_failures": failures,
                "messages": sum(counts.values()),
                **counts,
                "result": self._result,
                "duration_ms": round(seconds * 1000, 1),
            },
        )

    async def _handle_client(self) -> None:
        """aiosmtpd's session, unless `admit` refuses the peer: then its reply instead of the
        greeting, and the connection is closed."""
        peer: Any = self.session.peer if self.session is not None else None
        refusal = self.admit(str(peer[0]) if isinstance(peer, tuple) and peer else "") if self.admit is not None else None
        if refusal is not None:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        self._observe(status.decode("utf-8", "replace") if isinstance(status, bytes) else status)
        await super().push(status)

    def _observe(self, reply: str) -> None:
        if reply.startswith("354"):
            self._data_started = time.monotonic()
            return
        if self._data_started is not None:
            metrics.ACCEPT_DURATION.observe(time.monotonic() - self._data_started)
            self._data_started = None
            result = data_result(reply)
            self._messages[result] += 1
            metrics.MESSAGES.labels(result).inc()
        elif reply.startswith("235"):
            self._auth = "ok"
        elif reply.startswith("535") and self._auth != "ok":
            self._auth = "failed"
        if reply.startswith("221"):
            self._result = "quit"
        elif reply.startswith("421"):
            self._result = "refused"

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        session = self.session
        if self.rate_limited is not None and session is not None and session.authenticated:
            wait = self.rate_limited.remaining(str(session.auth_data))
            if wait:
                await self.push(f"421 4.7.0 Rate limit exceeded for this server, try again in {wait} seconds; closing connection")
                if self.transport is not None:
                    self.transport.close()
                return
        await super().smtp_MAIL(arg)
