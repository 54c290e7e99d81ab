"""One log line and the metrics for each request, delivery attempt and webhook POST.

The domains call the one-line helpers at the bottom; the two middlewares are installed by
`main.create_app`. Lines name a server by its id and a recipient by its domain, never a token.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_service.core import metrics
from api_service.core.ratelimit import ROUTE_KEY

access_log = logging.getLogger("postgate.access")
delivery_log = logging.getLogger("postgate.delivery")
SERVER_ID_KEY = "server_id"  # request.state.server_id, set by the authentication dependencies


class RouteTap:
    """Innermost: copies the route the router matched into the request state, where
    `RequestLogMiddleware` (outermost, beyond the middlewares that copy the scope) can read it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                route = scope.get("route")
                if route is not None:
                    template = str(getattr(route, "path", "")) or "unmatched"
                elif scope.get("root_path", "") != root_path:
                    # A Mount (the console's static files) leaves no route, only its path appended
                    # to root_path; it is its own template (below it are file names).
                    template = scope["root_path"][len(root_path) :]
                else:
                    template = "unmatched"
                scope.setdefault("state", {})[ROUTE_KEY] = template


class RequestLogMiddleware:
    """Outermost: times every request, counts it by route template and status, and logs one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # unless a response starts: an exception reached the server error handler

        async def tap(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tap)
        finally:
            seconds = time.perf_counter() - start
            route = state.get(ROUTE_KEY, "unmatched")
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(seconds)
            if getattr(scope["app"].state.settings, "api_access_log", True):
                server_id = state.get(SERVER_ID_KEY)
                access_log.info(
                    "%s %s %d %.1fms%s",
                    method,
                    route,
                    status,
                    seconds * 1000,
                    f" server={server_id}" if server_id is not None else "",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "server_id": server_id,
                    },
                )


# --- one-line helpers for the domains -------------------------------------------------------------

RESULTS = {"delivered": "delivered", "retry": "deferred", "bounce": "bounced"}


def messages_accepted(*, sources: Iterable[str]) -> None:
    """Messages stored by intake, one entry point (api or smtp) each."""
    for source, count in Counter(sources).items():
        metrics.MESSAGES_ACCEPTED.labels(source).inc(count)


def delivery_attempt(*, message_id: uuid.UUID, server_id: int, recipient: str, code: int, outcome: str) -> None:
    """One recipient's reply in a delivery attempt; `outcome` is `bounces.classify.Outcome`'s value."""
    result = RESULTS.get(outcome, outcome)
    metrics.DELIVERY_ATTEMPTS.labels(result).inc()
    domain = recipient.rpartition("@")[2].lower()
    delivery_log.info(
        "delivery %s to @%s: %d %s server=%d",
        message_id,
        domain,
        code,
        result,
        server_id,
        extra={"message_id": str(message_id), "server_id": server_id, "recipient_domain": domain, "reply_code": code, "result": result},
    )


def webhook_attempt(*, status: int | None, gave_up: bool) -> None:
    """One webhook POST: its HTTP status (None: no answer), and whether the outbox stops trying."""
    result = "delivered" if status is not None and 200 <= status < 300 else "failed" if gave_up else "retry"
    metrics.WEBHOOK_ATTEMPTS.labels(result).inc()
