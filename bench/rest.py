"""REST accept: POST /email at several concurrencies, POST /email/batch and POST /email/withTemplate (a receipt
with a 10-item loop inside a layout with a `<style>` block, so rendering and CSS inlining are measured), beside
the no-op ceiling."""

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

LAYOUT = {
    "Name": "Bench layout",
    "Alias": "bench-layout",
    "TemplateType": "Layout",
    "HtmlBody": (
        "<html><head><style>body { font-family: sans-serif; } .brand { color: #e2571e; font-weight: bold; }"
        " table { border-collapse: collapse; } td { padding: 4px 8px; border-bottom: 1px solid #eee; } .total { font-weight: bold; }"
        " @media (max-width: 600px) { td { padding: 2px; } }</style></head>"
        '<body><p class="brand">{{ company }}</p>{{{ @content }}}<p>Questions? Reply to this email.</p></body></html>'
    ),
    "TextBody": "{{ company }}\n\n{{{ @content }}}\n\nQuestions? Reply to this email.",
}
RECEIPT = {
    "Name": "Bench receipt",
    "Alias": "bench-receipt",
    "LayoutTemplate": "bench-layout",
    "Subject": "Your receipt for order {{ order }}",
    "HtmlBody": (
        "<p>Hi {{ name }},</p><table>{{#each items}}<tr><td>{{ description }}</td><td>{{ quantity }}</td><td>{{ amount }}</td></tr>"
        '{{/each}}<tr><td class="total">Total</td><td></td><td class="total">{{ total }}</td></tr></table>'
    ),
    "TextBody": "Hi {{ name }},\n{{#each items}}- {{ description }} x {{ quantity }}: {{ amount }}\n{{/each}}Total: {{ total }}",
}
TEMPLATED = {
    "From": "Bench <bench@bench.example>",
    "To": "Ann <ann@example.net>, bob@example.net",
    "TemplateAlias": "bench-receipt",
    "TemplateModel": {
        "company": "Acme & Sons",
        "order": "1234",
        "name": "Ann",
        "items": [{"description": f"Item <{i}>", "quantity": i, "amount": f"${i}.00"} for i in range(1, 11)],
        "total": "$55.00",
    },
    "Tag": "receipt",
    "Metadata": {"order": "1234", "customer": "42"},
}
TEMPLATED_SCENARIO = "REST /email/withTemplate (10-item receipt in a layout)"


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
        for template in (LAYOUT, RECEIPT):
            httpx.post(f"http://127.0.0.1:{port}/templates", json=template, headers=headers).raise_for_status()
        single = json.dumps(MESSAGE).encode()
        templated = json.dumps(TEMPLATED).encode()
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
        for c in concurrencies:
            rows.append(
                _measure(
                    TEMPLATED_SCENARIO,
                    api_root=root,
                    port=port,
                    path="/email/withTemplate",
                    headers=headers,
                    body=templated,
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
                path="/email/withTemplate",
                headers={},
                body=templated,
                per_request=1,
                concurrency=c,
                total=total,
                seconds=seconds,
            )
            ceilings[(TEMPLATED_SCENARIO, c)] = r.rate
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
