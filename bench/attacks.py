"""`python -m bench.attacks [--out PATH]`: issue 22's attacks against a running API, one at a time,
while a prober asks `/health` every 50 ms; writes the slowest `/health` answer and the API's peak
RSS above idle for each (bench/ATTACKS.md). Loopback only, bounded: every attack is a fixed number
of requests with a timeout; it creates its own database and drops it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, start_embedded, with_database
from bench.procs import free_port, start

ACCOUNT = "bench-account-token"
TIMEOUT = 120.0


@dataclass
class Outcome:
    name: str
    statuses: str
    seconds: float
    health_max_ms: float
    rss_above_idle_mb: float


class Probe:
    """Asks /health every 50 ms and samples the API's RSS while an attack runs."""

    def __init__(self, base: str, process: psutil.Process) -> None:
        self.base, self.process = base, process
        self.worst = 0.0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in [self.process, *self.process.children(recursive=True)])

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                client.get(f"{self.base}/health")
                self.worst = max(self.worst, time.perf_counter() - started)
                self.peak = max(self.peak, self.rss())
                self._stop.wait(0.05)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _links_email(sender: str) -> dict[str, Any]:
    html = "".join(f'<a href="https://example.com/{i}">{i}</a>' for i in range(40_000))
    return {"From": sender, "To": "a@example.net", "Subject": "links", "HtmlBody": html, "TrackLinks": "HtmlAndText"}


def _template_bomb() -> dict[str, Any]:
    section = "{{#a}}{{#a}}{{#a}}{{x}}{{/a}}{{/a}}{{/a}}"
    return {"Subject": "s", "HtmlBody": section * 20_000, "TestRenderModel": {"a": [{"x": "y" * 100}] * 200}}


def _bulk(entries: int, sender: str, pad: int) -> dict[str, Any]:
    messages = [{"To": f"r{i}@example.net", "TemplateModel": {"pad": "x" * pad}} for i in range(entries)]
    return {"From": sender, "Subject": "s", "HtmlBody": "h", "MessageStream": "broadcast", "Messages": messages}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "ATTACKS.md")
    parser.add_argument("--only", default="", help="run only the attacks whose name starts with this")
    args = parser.parse_args(argv)
    handle: Any = None
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        handle, base_url = start_embedded()
    url = with_database(base_url, f"postgate_attacks_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    port = free_port()
    api = start(
        "api-attacks",
        ["-m", "api_service"],
        {"DATABASE_URL": url, "ACCOUNT_TOKEN": ACCOUNT, "API_PORT": str(port), "API_WORKERS": "1"},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    base = f"http://127.0.0.1:{port}"
    outcomes: list[Outcome] = []
    try:
        account = {"X-Postmark-Account-Token": ACCOUNT}
        token = httpx.post(f"{base}/servers", json={"Name": "attacks"}, headers=account).json()["ApiTokens"][0]
        httpx.post(f"{base}/senders", json={"FromEmail": "a@attack.example", "Name": "A"}, headers=account)
        server = {"X-Postmark-Server-Token": token}
        test = {"X-Postmark-Server-Token": "POSTMARK_API_TEST"}
        root = api.tree()[0]

        def attack(name: str, requests: list[Callable[[httpx.Client], int]]) -> None:
            if not name.startswith(args.only):
                return
            time.sleep(1.0)
            idle = Probe(base, root).rss()
            started = time.perf_counter()
            with Probe(base, root) as probe, httpx.Client(timeout=TIMEOUT) as client, ThreadPoolExecutor(len(requests)) as pool:
                statuses = list(pool.map(lambda r: r(client), requests))
            counts = {s: statuses.count(s) for s in sorted(set(statuses))}
            outcomes.append(
                Outcome(
                    name=name,
                    statuses=", ".join(f"{n}×{s}" for s, n in counts.items()),
                    seconds=time.perf_counter() - started,
                    health_max_ms=probe.worst * 1000,
                    rss_above_idle_mb=max(0, probe.peak - idle) / 2**20,
                )
            )
            print(outcomes[-1], flush=True)

        def post(path: str, body: bytes, headers: dict[str, str]) -> Callable[[httpx.Client], int]:
            hdrs = {**headers, "Content-Type": "application/json"}
            return lambda c: c.post(f"{base}{path}", content=body, headers=hdrs).status_code

        links = json.dumps(_links_email("a@attack.example")).encode()
        attack("1 · /email, 40k tracked links (1.4 MB)", [post("/email", links, server)])
        bomb = json.dumps(_template_bomb()).encode()
        attack("2 · /templates/validate, nested sections", [post("/templates/validate", bomb, server)])
        big_test_bulk = json.dumps(_bulk(500_000, "a@attack.example", 0)).encode()
        attack(f"3 · test-token bulk, 500k entries ({len(big_test_bulk) / 2**20:.1f} MB)", [post("/email/bulk", big_test_bulk, test)])
        real_bulk = json.dumps(_bulk(10_000, "a@attack.example", 4_800)).encode()
        attack(
            f"3b · server-token bulk ×4 at once, 10k entries ({len(real_bulk) / 2**20:.0f} MB each)",
            [post("/email/bulk", real_bulk, server) for _ in range(4)],
        )
        guesses = json.dumps({"Tokens": [secrets.token_hex(16) for _ in range(500)]}).encode()
        attack("8 · /internal/smtp/auth/batch without credentials ×20", [post("/internal/smtp/auth/batch", guesses, {}) for _ in range(20)])
        good = {"From": "a@attack.example", "To": "b@example.net", "Subject": "ok", "TextBody": "ok"}
        bad = dict(good, Subject="\ud800 lone surrogate")
        bodies = [json.dumps(good).encode()] * 60 + [json.dumps(bad).encode()] * 4
        attack("14 · 60 valid + 4 lone-surrogate sends at once", [post("/email", b, server) for b in bodies])
        huge = b'{"From": "' + b"x" * (20 * 2**20) + b'"}'
        attack("17 · 20 MB body on /email", [post("/email", huge, server)])
        attack("17b · /email/batch with a 3 MB attachment ×8", [post("/email/batch", _attachments(), server) for _ in range(8)])
    finally:
        api.stop()
        drop_database(url)
        del handle
    lines = [
        "# Attacks of issue 22, measured",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, one API process (`API_WORKERS=1`), "
        "`python -m bench.attacks`. Each attack alone; `/health` asked every 50 ms meanwhile.",
        "",
        "| Attack | Answers | Seconds | Slowest `/health` | API RSS above idle |",
        "|---|---|---:|---:|---:|",
        *(f"| {o.name} | {o.statuses} | {o.seconds:.1f} | {o.health_max_ms:.0f} ms | {o.rss_above_idle_mb:.0f} MB |" for o in outcomes),
        "",
    ]
    args.out.write_text("\n".join(lines))


def _attachments() -> bytes:
    content = base64.b64encode(os.urandom(3 * 2**20)).decode()
    item = {
        "From": "a@attack.example",
        "To": "b@example.net",
        "Subject": "a",
        "TextBody": "a",
        "Attachments": [{"Name": "a.bin", "Content": content, "ContentType": "application/octet-stream"}],
    }
    return json.dumps([item]).encode()


if __name__ == "__main__":
    main()
