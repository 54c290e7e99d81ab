"""`python -m bench.ratelimit [--seconds N]`: what the rate limiter and the request log line cost on
`POST /email`, one server token that stays under its limit, against the limiter off.

Not part of `make bench`'s report: a quick comparison printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from typing import Any

import httpx
import psutil

from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, start_embedded, with_database
from bench.loadgen import encode_request, run_load
from bench.procs import Meter, free_port, postgres_processes, start
from bench.rest import MESSAGE

HIGH = {"RATE_LIMIT_SERVER_PER_SECOND": "1000000", "RATE_LIMIT_SERVER_BURST": "1000000"}
VARIANTS: list[tuple[str, dict[str, str]]] = [
    # Set BENCH_BASE to an unpacked copy of the code before this change (git archive <commit>) to
    # compare with it; the variant is skipped otherwise.
    ("before (no limiter, metrics or request log)", {"PYTHONSAFEPATH": "1", "PYTHONPATH": os.environ.get("BENCH_BASE", "")}),
    ("limiter off, request log off", {"RATE_LIMIT_ENABLED": "false", "API_ACCESS_LOG": "false"}),
    ("limiter off, request log on", {"RATE_LIMIT_ENABLED": "false"}),
    ("PostgreSQL, leases (default)", HIGH),
    ("PostgreSQL, a round trip per request", {**HIGH, "RATE_LIMIT_LEASE_SECONDS": "0"}),
    ("Redis, leases", {**HIGH, "REDIS_URL": "redis://127.0.0.1:6379/13"}),
    ("Redis, a round trip per request", {**HIGH, "REDIS_URL": "redis://127.0.0.1:6379/13", "RATE_LIMIT_LEASE_SECONDS": "0"}),
]


def measure(database_url: str, name: str, env: dict[str, str], *, concurrency: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    account = "bench-account-token"
    api = start(
        "api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(port), "API_WORKERS": "1", **env},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        headers = {"X-Postmark-Account-Token": account}
        created = httpx.post(f"http://127.0.0.1:{port}/servers", json={"Name": f"rl-{secrets.token_hex(4)}"}, headers=headers)
        token = created.json()["ApiTokens"][0]
        httpx.post(f"http://127.0.0.1:{port}/senders", json={"FromEmail": "bench@bench.example", "Name": "B"}, headers=headers)
        body = json.dumps(MESSAGE).encode()
        request = encode_request(
            "POST", "/email", f"127.0.0.1:{port}", {"Content-Type": "application/json", "X-Postmark-Server-Token": token}, body
        )
        # Warm-up, then the measured run.
        asyncio.run(run_load(host="127.0.0.1", port=port, request=request, concurrency=concurrency, total=300, max_seconds=5))
        groups = {"api": [psutil.Process(api.process.pid)], "postgres": postgres_processes()}
        with Meter(groups) as meter:
            result = asyncio.run(
                run_load(host="127.0.0.1", port=port, request=request, concurrency=concurrency, total=10**7, max_seconds=seconds)
            )
        return {
            "variant": name,
            "rate": result.rate,
            "p50": result.percentile(0.5) * 1000,
            "p99": result.percentile(0.99) * 1000,
            "api_cpu": meter.cpu["api"] / max(result.requests, 1) * 1000,
            "pg_cpu": meter.cpu["postgres"] / max(result.requests, 1) * 1000,
            "errors": result.errors,
        }
    finally:
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--micro", action="store_true", help="only the in-process measurements")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every variant, interleaved; the median of each is shown")
    args = parser.parse_args()
    handle: Any = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        handle, base = start_embedded()
    url = with_database(base, f"postgate_bench_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        if args.micro:
            micro(url)
            return
        for _ in range(args.rounds):
            for name, env in VARIANTS:
                if env.get("PYTHONSAFEPATH") and not env["PYTHONPATH"]:
                    continue
                rows.setdefault(name, []).append(measure(url, name, env, concurrency=args.concurrency, seconds=args.seconds))
    finally:
        drop_database(url)
        del handle
    print(f"POST /email, 1 API process, {args.concurrency} connections, {args.seconds:.0f} s, median of {args.rounds} interleaved runs\n")
    print("| Variant | msg/s | p50 ms | p99 ms | API CPU ms/msg | PostgreSQL CPU ms/msg | Errors |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in VARIANTS:
        if name not in rows:
            continue
        r = {k: statistics.median(row[k] for row in rows[name]) for k in ("rate", "p50", "p99", "api_cpu", "pg_cpu", "errors")}
        print(f"| {name} | {r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['api_cpu']:.2f} | {r['pg_cpu']:.2f} | {r['errors']} |")


# --- in-process: CPU per request of the limiter and of the middlewares, immune to a busy machine ---


async def _limiter_cost(store: Any, *, lease: float, checks: int) -> tuple[float, float, int]:
    """(CPU µs per check, wall µs per check, store round trips) for one busy key under its limit."""
    from api_service.core.gcra import Rate
    from api_service.core.ratelimit import Limiter

    calls = 0
    take = store.take

    async def counted(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await take(**kwargs)

    store.take = counted
    limiter = Limiter(store=store, lease_seconds=lease)
    rate = Rate(per_second=1_000_000, burst=1_000_000)
    key = f"bench:{secrets.token_hex(4)}"

    async def burst(n: int) -> None:
        # 16 concurrent clients, as the HTTP runs
        await asyncio.gather(*(one(n // 16) for _ in range(16)))

    async def one(n: int) -> None:
        for _ in range(n):
            assert (await limiter.check(key, rate)).allowed

    await burst(256)  # warm-up: connections, prepared statements
    calls = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await burst(checks)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await limiter.close()
    return cpu / checks * 1e6, wall / checks * 1e6, calls


async def _middleware_cost(requests: int) -> dict[str, float]:
    """CPU µs per request of a no-op route called straight through ASGI: bare, then with the rate
    limit, route tap and request log middlewares (limiter off: its cost is measured apart), without
    and with the request line written (to /dev/null) as text and as JSON."""
    import logging

    from fastapi import FastAPI

    from api_service.core.logs import TEXT_FORMAT, PostgateJsonFormatter
    from api_service.core.observe import RequestLogMiddleware, RouteTap
    from api_service.core.ratelimit import RateLimitMiddleware

    access = logging.getLogger("postgate.access")
    access.propagate = False
    access.setLevel(logging.INFO)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - for the process' lifetime
    access.addHandler(handler)

    def build(observed: bool, log: bool) -> FastAPI:
        app = FastAPI()

        @app.post("/email")
        async def noop() -> dict[str, int]:
            return {"ErrorCode": 0}

        app.state.settings = type("S", (), {"api_access_log": log})()
        app.state.rate_limits = None
        if observed:
            app.add_middleware(RouteTap)
            app.add_middleware(RateLimitMiddleware)
            app.add_middleware(RequestLogMiddleware)
        return app

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/email",
        "raw_path": b"/email",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-postmark-server-token", b"t" * 36), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def cost(app: FastAPI) -> float:
        for _ in range(500):
            await app(dict(scope), receive, send)
        cpu = time.process_time()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return (time.process_time() - cpu) / requests * 1e6

    bare = await cost(build(False, False))
    costs = {"middlewares, request log off": await cost(build(True, False)) - bare}
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    costs["middlewares, request log as text"] = await cost(build(True, True)) - bare
    handler.setFormatter(PostgateJsonFormatter("%(levelname)s %(name)s %(message)s"))
    costs["middlewares, request log as JSON"] = await cost(build(True, True)) - bare
    return costs


def micro(database_url: str) -> None:
    from api_service.operations.stores import PostgresStore, RedisStore

    print("\nIn process, CPU of this process per request (immune to other load on the machine):\n")
    print("| What | CPU µs/request | wall µs/request | store round trips per 1,000 requests |")
    print("|---|---|---|---|")
    for what, micros in asyncio.run(_middleware_cost(20_000)).items():
        print(f"| {what} | {micros:.1f} | – | – |")
    for name, make, lease, checks in (
        ("PostgreSQL, leases (default)", lambda: PostgresStore(database_url), 0.5, 20_000),
        ("PostgreSQL, a round trip per request", lambda: PostgresStore(database_url), 0.0, 4_000),
        ("Redis, leases", lambda: RedisStore("redis://127.0.0.1:6379/13"), 0.5, 20_000),
        ("Redis, a round trip per request", lambda: RedisStore("redis://127.0.0.1:6379/13"), 0.0, 4_000),
    ):
        cpu, wall, calls = asyncio.run(_limiter_cost(make(), lease=lease, checks=checks))
        print(f"| limiter check: {name} | {cpu:.1f} | {wall:.1f} | {calls / checks * 1000:.0f} |")


if __name__ == "__main__":
    main()
