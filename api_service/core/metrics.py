"""Prometheus metrics of the API and the worker, all named `postgate_*`, and their exposition.

Counting happens in process memory (prometheus-client). With several API worker processes
(`API_WORKERS` > 1) `api_service.__main__` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
before they start, each process writes its figures there, and whichever process answers a scrape
adds them all up. Figures about the whole deployment that live in PostgreSQL (queue depth, webhook
outbox) are not counted here: `operations.service` reads them at scrape time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    make_wsgi_app,
    multiprocess,
)
from sqlalchemy.ext.asyncio import AsyncEngine

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


API_REGISTRY = CollectorRegistry()  # served by GET /metrics on the API port
WORKER_REGISTRY = CollectorRegistry()  # served on WORKER_METRICS_PORT
if multiprocess_dir() is None:
    # CPU, memory and file descriptors of this process. In multiprocess mode they would describe
    # only the process that happens to answer the scrape, so they are left out there.
    ProcessCollector(namespace="postgate", registry=API_REGISTRY)
    ProcessCollector(namespace="postgate", registry=WORKER_REGISTRY)

# --- API ----------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "postgate_http_requests",
    "API requests answered, by route template and HTTP status",
    ["method", "route", "status"],
    registry=API_REGISTRY,
)
HTTP_DURATION = Histogram(
    "postgate_http_request_duration_seconds",
    "Time to answer an API request, by route template; route=/email is the accept latency of a single send",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=API_REGISTRY,
)
MESSAGES_ACCEPTED = Counter(
    "postgate_messages_accepted", "Messages stored and queued, by entry point (api, smtp)", ["source"], registry=API_REGISTRY
)
RATE_LIMITED = Counter(
    "postgate_rate_limited_requests", "Requests refused with 429, by token kind (server, account)", ["kind"], registry=API_REGISTRY
)
RATE_LIMIT_STORE_ERRORS = Counter(
    "postgate_rate_limit_store_errors",
    "Rate limit checks that could not reach PostgreSQL or Redis, and let the request through",
    registry=API_REGISTRY,
)

# --- worker -------------------------------------------------------------------------------------
DELIVERY_ATTEMPTS = Counter(
    "postgate_delivery_attempts",
    "Delivery attempts per recipient, by what the reply meant: delivered, deferred (a temporary failure) or bounced",
    ["result"],
    registry=WORKER_REGISTRY,
)
TLS_SESSIONS = Counter(
    "postgate_delivery_tls_sessions",
    "Direct-delivery SMTP sessions by TLS policy (sts, tlsa, no-policy-found) and result (success or an RFC 8460 failure type)",
    ["policy", "result"],
    registry=WORKER_REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "postgate_webhook_attempts",
    "Webhook POSTs, by outcome: delivered, retry (failed, will be tried again) or failed (given up)",
    ["result"],
    registry=WORKER_REGISTRY,
)
RETENTION_DELETED = Counter(
    "postgate_retention_deleted_rows",
    "Rows the retention purge deleted, by kind (messages, bounces, webhook_requests, bulk_requests, inbound_messages, idempotency_keys, dmarc_reports)",
    ["kind"],
    registry=WORKER_REGISTRY,
)

SENDER_HEALTH = Gauge(
    "postgate_sender_health",
    "Last verdict of each sender-health check, by subject (a domain or a source IP) and check: 0 pass, 1 warn, 2 fail",
    ["subject", "check"],
    multiprocess_mode="max",
    registry=WORKER_REGISTRY,
)
DMARC_REPORTS = Counter(
    "postgate_dmarc_reports_received",
    "DMARC and TLS reports received on the inbound listener, by kind (aggregate, failure, tls) and outcome (stored, duplicate, unknown_domain, invalid)",
    ["kind", "outcome"],
    registry=API_REGISTRY,
)

# --- both ---------------------------------------------------------------------------------------
DB_POOL = Gauge(
    "postgate_db_pool_connections",
    "Database connections of this process' pool: in_use, idle, and max (pool size plus overflow)",
    ["state"],
    multiprocess_mode="livesum",
    registry=API_REGISTRY,
)
WORKER_REGISTRY.register(DB_POOL)
API_REGISTRY.register(SENDER_HEALTH)  # on-demand checks (verifyDmarc) set it in the API process


def render(registry: CollectorRegistry = API_REGISTRY) -> bytes:
    """The exposition text of this process, or of every process in multiprocess mode."""
    if multiprocess_dir() is None:
        return generate_latest(registry)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exited() -> None:
    """In multiprocess mode, drop this process' live gauges (its pool) from the sum."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def clear_multiprocess_dir(path: str) -> None:
    """Files left by an earlier run would be added to this one's figures."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(path, name))


def sample_pool(engine: AsyncEngine, *, limit: int) -> None:
    pool: Any = engine.pool
    DB_POOL.labels("in_use").set(pool.checkedout())
    DB_POOL.labels("idle").set(pool.checkedin())
    DB_POOL.labels("max").set(limit)


async def sample_pool_forever(engine: AsyncEngine, *, limit: int, every: float = 5.0) -> None:
    """Keep the pool gauges current; runs until cancelled."""
    while True:
        sample_pool(engine, limit=limit)
        await asyncio.sleep(every)


def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>` when a metrics token is set; anything when it is not."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_metrics(*, host: str, port: int, token: str = "") -> Callable[[], None]:
    """`GET /metrics` of this process on its own port (worker), in a thread; returns a stop function."""
    exposition = make_wsgi_app(WORKER_REGISTRY) if multiprocess_dir() is None else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"metrics token required\n"]
        if exposition is not None:
            return exposition(environ, start_response)  # type: ignore[no-any-return]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return [render(WORKER_REGISTRY)]

    httpd = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="postgate-metrics", daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()

    return stop
