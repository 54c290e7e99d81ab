"""REST accept: POST /email at several concurrencies and POST /email/batch, beside the no-op ceiling."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

import httpx
import psutil

from bench.loadgen import LoadResult, encode_request, run_load
from bench.procs import Meter, free_port, postgres_processes, start

MESSAGE = {
    "From": "Bench <bench@bench.example>",
    "To": "Ann <ann@example.net>, bob@example.net",
    "Subject": "Your order has shipped",
    "TextBody": "Hello Ann,\n\nyour order #1234 has shipped and will arrive on Thursday.\n\nThanks!\n" * 5,
    "HtmlBody": "<html><body><p>Hello Ann,</p><p>your order <b>#1234</b> has shipped.</p><p>Thanks!</p></body></html>" * 5,
    "Tag": "shipping",
    "Metadata": {"order": "1234", "customer": "42"},
}


@dataclass
class Row:
    scenario: str
    concurrency: int
    messages: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_per_msg_ms: dict[str, float]
    peak_rss_mb: dict[str, float]
    errors: int
    ceiling_rate: float = 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.ceiling_rate if self.ceiling_rate else 0.0


def measured(
    name: str, concurrency: int, *, messages: int, seconds: float, meter: Meter, errors: int, result: LoadResult | None = None
) -> Row:
    """A row from what a Meter saw; latency percentiles when there is a load result."""
    return Row(
        scenario=name,
        concurrency=concurrency,
        messages=messages,
        seconds=seconds,
        rate=messages / seconds if seconds else 0.0,
        p50_ms=result.percentile(0.5) * 1000 if result else 0.0,
        p99_ms=result.percentile(0.99) * 1000 if result else 0.0,
        cpu_per_msg_ms={k: v / max(messages, 1) * 1000 for k, v in meter.cpu.items()},
        peak_rss_mb={k: v / 2**20 for k, v in meter.peak_rss.items()},
        errors=errors,
    )


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def _measure(
    name: str,
    *,
    api_root: psutil.Process,
    port: int,
    path: str,
    headers: dict[str, str],
    body: bytes,
    per_request: int,
    concurrency: int,
    total: int,
    seconds: float,
) -> Row:
    request = encode_request("POST", path, f"127.0.0.1:{port}", {"Content-Type": "application/json", **headers}, body)
    groups = {"api": [api_root], "postgres": postgres_processes(), "loadgen": [psutil.Process()]}
    with Meter(groups) as meter:
        result = asyncio.run(
            run_load(host="127.0.0.1", port=port, request=request, concurrency=concurrency, total=total, max_seconds=seconds)
        )
    return measured(
        name, concurrency, messages=result.requests * per_request, seconds=result.seconds, meter=meter, errors=result.errors, result=result
    )


def run(*, database_url: str, quick: bool) -> list[Row]:
    concurrencies = (1, 16, 64)
    seconds = 1.5 if quick else 10.0
    total = 200 if quick else 1_000_000
    workers = "1" if quick else str(_workers())
    rows: list[Row] = []

    port = free_port()
    account = "bench-account-token"
    api = start(
        "api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(port), "API_WORKERS": workers},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        created = httpx.post(
            f"http://127.0.0.1:{port}/servers", json={"Name": f"bench-{os.getpid()}"}, headers={"X-Postmark-Account-Token": account}
        )
        created.raise_for_status()
        token = created.json()["ApiTokens"][0]
        httpx.post(
            f"http://127.0.0.1:{port}/senders",
            json={"FromEmail": "bench@bench.example", "Name": "Bench"},
            headers={"X-Postmark-Account-Token": account},
        )
        headers = {"X-Postmark-Server-Token": token}
        single = json.dumps(MESSAGE).encode()
        batch = json.dumps([MESSAGE] * (50 if quick else 500)).encode()
        root = api.tree()[0]
        for c in concurrencies:
            rows.append(
                _measure(
                    "REST /email",
                    api_root=root,
                    port=port,
                    path="/email",
                    headers=headers,
                    body=single,
                    per_request=1,
                    concurrency=c,
                    total=total,
                    seconds=seconds,
                )
            )
        rows.append(
            _measure(
                "REST /email/batch (500)",
                api_root=root,
                port=port,
                path="/email/batch",
                headers=headers,
                body=batch,
                per_request=50 if quick else 500,
                concurrency=2,
                total=4 if quick else 1_000_000,
                seconds=seconds,
            )
        )
    finally:
        api.stop()

    port = free_port()
    noop = start(
        "noop",
        [
            "-m",
            "uvicorn",
            "bench.noop_app:create_app",
            "--factory",
            "--port",
            str(port),
            "--workers",
            workers,
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        {},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    try:
        root = noop.tree()[0]
        ceilings: dict[tuple[str, int], float] = {}
        for c in concurrencies:
            r = _measure(
                "ceiling",
                api_root=root,
                port=port,
                path="/email",
                headers={},
                body=single,
                per_request=1,
                concurrency=c,
                total=total,
                seconds=seconds,
            )
            ceilings[("REST /email", c)] = r.rate
        r = _measure(
            "ceiling",
            api_root=root,
            port=port,
            path="/email/batch",
            headers={},
            body=batch,
            per_request=50 if quick else 500,
            concurrency=2,
            total=4 if quick else 1_000_000,
            seconds=seconds,
        )
        ceilings[("REST /email/batch (500)", 2)] = r.rate
    finally:
        noop.stop()
    for row in rows:
        row.ceiling_rate = ceilings.get((row.scenario, row.concurrency), 0.0)
    return rows
