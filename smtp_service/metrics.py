"""The gateway's Prometheus metrics, all named `postgate_smtp_*`, on `SMTP_METRICS_PORT`."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, make_wsgi_app

REGISTRY = CollectorRegistry()
ProcessCollector(namespace="postgate_smtp", registry=REGISTRY)

SESSIONS = Counter("postgate_smtp_sessions", "SMTP connections accepted", registry=REGISTRY)
SESSIONS_ACTIVE = Gauge("postgate_smtp_sessions_active", "SMTP connections open now", registry=REGISTRY)
AUTH_FAILURES = Counter(
    "postgate_smtp_auth_failures", "Failed SMTP AUTH attempts (wrong token, or SMTP off for its server)", registry=REGISTRY
)
MESSAGES = Counter(
    "postgate_smtp_messages",
    "Messages after DATA, by reply: accepted (250), deferred (4xx), rate_limited (451 4.7.1), rejected (5xx)",
    ["result"],
    registry=REGISTRY,
)
ACCEPT_DURATION = Histogram(
    "postgate_smtp_accept_duration_seconds",
    "From the 354 reply to the final reply of DATA: the client's upload and the API's accept",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
BATCH_MESSAGES = Histogram(
    "postgate_smtp_batch_messages",
    "Messages per API call: the submissions of concurrent connections are stored in one transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
    registry=REGISTRY,
)
AUTH_BATCH_TOKENS = Histogram(
    "postgate_smtp_auth_batch_tokens",
    "AUTH checks per API call: the AUTH commands of concurrent connections are checked together",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
    registry=REGISTRY,
)


def auth_failed() -> None:
    AUTH_FAILURES.inc()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics(*, host: str, port: int, token: str = "") -> Callable[[], None]:
    """`GET /metrics` in a thread; returns a stop function."""
    exposition = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if token and not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"metrics token required\n"]
        return exposition(environ, start_response)  # type: ignore[no-any-return]

    httpd = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, name="postgate-smtp-metrics", daemon=True).start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()

    return stop
