"""RESULTS.md and the throughput plot."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.rest import TEMPLATED_SCENARIO, Row


def _met(ok: bool) -> str:
    return "**yes**" if ok else "no"


def _find(rows: list[Row], prefix: str, concurrency: int | None = None) -> list[Row]:
    return [r for r in rows if r.scenario.startswith(prefix) and (concurrency is None or r.concurrency == concurrency)]


def _rate(rows: list[Row], prefix: str, concurrency: int) -> Row | None:
    found = [r for r in rows if r.scenario == prefix and r.concurrency == concurrency]
    return found[0] if found else None


def targets(rows: list[Row]) -> list[str]:
    """Issue 17's targets, worded exactly as there, each with whether this run met it and what it measured."""
    lines = ["| Target (issue 17; 2 cores, PostgreSQL on the same box) | Met? | Measured |", "|---|---|---|"]
    rest16, rest64 = _rate(rows, "REST /email", 16), _rate(rows, "REST /email", 64)
    if rest64 and rest16:
        ok = rest64.rate >= 2500 and rest64.p99_ms <= 50 and rest64.rate >= rest16.rate and rest64.ratio >= 0.2
        lines.append(
            "| REST `POST /email`: ≥ 2,500 msg/s at 64 clients with p99 ≤ 50 ms; 64 clients ≥ 16 clients; ≥ 0.2 × the no-op ceiling"
            f" measured in the same run | {_met(ok)} | {rest64.rate:,.0f} msg/s at 64 clients, p99 {rest64.p99_ms:.0f} ms;"
            f" {rest16.rate:,.0f} msg/s at 16; {rest64.ratio:.2f} × ceiling ({rest64.ceiling_rate:,.0f}) |"
        )
    batch = _find(rows, "REST /email/batch")
    if batch:
        lines.append(f"| `/email/batch` (500): ≥ 20,000 msg/s | {_met(batch[0].rate >= 20000)} | {batch[0].rate:,.0f} msg/s |")
    smtp16 = _rate(rows, "SMTP accept, reused connections", 16)
    per_message = _find(rows, "SMTP accept, connection per message")
    if smtp16 and per_message:
        ok = smtp16.rate >= 1500 and smtp16.ratio >= 0.4 and per_message[0].rate >= 500
        lines.append(
            "| SMTP, 16 reused connections: ≥ 1,500 msg/s and ≥ 0.4 × the no-op aiosmtpd ceiling — i.e. at least Postfix's durable"
            f" accept rate on the same machine; connection per message ≥ 500 msg/s | {_met(ok)} | {smtp16.rate:,.0f} msg/s,"
            f" {smtp16.ratio:.2f} × ceiling; connection per message {per_message[0].rate:,.0f} msg/s |"
        )
    pairs = [
        (plain, templated)
        for c in sorted({r.concurrency for r in rows if r.scenario == "REST /email"})
        if (plain := _rate(rows, "REST /email", c)) and (templated := _rate(rows, TEMPLATED_SCENARIO, c))
    ]
    if pairs:
        ok = all(t.rate >= 0.8 * p.rate for p, t in pairs)
        measured = "; ".join(f"{t.rate / p.rate:.2f} × at {p.concurrency} clients ({t.rate:,.0f} vs {p.rate:,.0f})" for p, t in pairs)
        lines.append(f"| `/email/withTemplate` (once templates land): ≥ 0.8 × plain `/email` | {_met(ok)} | {measured} |")
    drain2 = _rate(rows, "Delivery to a local sink", 2)
    if drain2:
        lines.append(
            "| Delivery to a local sink with 2 workers ≥ 2,000 msg/s (after the trust issue's per-message fencing) |"
            f" {_met(drain2.rate >= 2000)} | {drain2.rate:,.0f} msg/s |"
        )
    scale = _find(rows, "Data scale")
    if scale:
        worst = max(scale, key=lambda r: r.p99_ms)
        over = [r.scenario.split(": ", 1)[1] for r in scale if r.p99_ms > 150]
        size = scale[0].scenario.split(":", 1)[0].removeprefix("Data scale ")
        lines.append(
            "| Data scale (issue 25): searches, details, stats, bounces and the console's activity page each p99 ≤ 150 ms with 10M"
            f" messages | {_met(not over and '10,000,000' in size)} | measured on {size}: worst p99 {worst.p99_ms:,.0f} ms"
            f" ({worst.scenario.split(': ', 1)[1]}); over 150 ms: {', '.join(over) or 'none'} |"
        )
    return lines


def earlier_targets(rows: list[Row], soak: dict[str, Any] | None) -> list[str]:
    """Targets of earlier issues that still hold the line: accept-to-delivered latency and flat memory."""
    lines = ["| Earlier target | Met? | Measured |", "|---|---|---|"]
    latency = _find(rows, "Accept → delivered")
    if latency:
        lines.append(f"| Accept-to-delivered p99 ≤ 1 s | {_met(latency[0].p99_ms <= 1000)} | p99 {latency[0].p99_ms:.0f} ms |")
    if soak:
        growth = soak["rss_end_mb"] / soak["rss_after_warmup_mb"] - 1
        lines.append(
            f"| Memory flat under a 10-minute soak | {_met(growth <= 0.1 and soak['seconds'] >= 600)} | {soak['seconds']:.0f} s soak: RSS {soak['rss_after_warmup_mb']:.0f} → {soak['rss_end_mb']:.0f} MB after warm-up ({growth:+.1%}), {soak['messages']:,} messages |"
        )
    return lines if len(lines) > 2 else []


def merge(path: Path, *, group: str, rows: list[Row], meta: dict[str, Any]) -> None:
    """One group's rows into RESULTS.json and RESULTS.md (`path`), the other groups' rows kept, for a
    group run on its own (`python -m bench.datascale --record`), as `python -m bench --only` does."""
    saved = path.with_suffix(".json")
    previous = json.loads(saved.read_text()) if saved.exists() else {"rows": [], "soak": None}
    kept = [r for r in previous["rows"] if r["group"] != group]
    merged = [*kept, *(dict(asdict(r), group=group) for r in rows)]
    saved.write_text(json.dumps({"rows": merged, "soak": previous["soak"]}, indent=1))
    write(path, rows=[Row(**{k: v for k, v in r.items() if k != "group"}) for r in merged], meta=meta, soak=previous["soak"])


def write(path: Path, *, rows: list[Row], meta: dict[str, Any], soak: dict[str, Any] | None = None) -> None:
    lines = ["# Postgate benchmark results", "", *targets(rows), ""]
    earlier = earlier_targets(rows, soak)
    if earlier:
        lines += [*earlier, ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += [
        "",
        "## Scenarios",
        "",
        "Clients are concurrent connections (or worker processes for delivery). CPU is milliseconds per message for each group of",
        "processes; RSS counts PostgreSQL's shared buffers once per backend, so its figure overstates.",
        "",
        "| Scenario | Clients | Messages | msg/s | p50 ms | p99 ms | Ceiling msg/s | Ratio | CPU ms/msg | Peak RSS MB | Errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_per_msg_ms.items()) or "–"
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items() if k != "loadgen") or "–"
        ceiling = f"{r.ceiling_rate:,.0f}" if r.ceiling_rate else "–"
        ratio = f"{r.ratio:.2f}" if r.ceiling_rate else "–"
        lines.append(
            f"| {r.scenario} | {r.concurrency} | {r.messages:,} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {ceiling} | {ratio} | {cpu} | {rss} | {r.errors} |"
        )
    plot = path.with_name("throughput.png")
    _plot(plot, rows)
    lines += ["", f"![throughput against concurrency]({plot.name})", ""]
    notes = path.with_name("NOTES.md")
    if notes.exists() and path.name == "RESULTS.md":
        lines += ["", notes.read_text()]
    path.write_text("\n".join(lines) + "\n")


def _plot(path: Path, rows: list[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for prefix, label in (("REST /email", "POST /email"), ("SMTP accept, reused", "SMTP, reused connections")):
        series = sorted(
            (r for r in rows if r.scenario == prefix or (r.scenario.startswith(prefix) and prefix.startswith("SMTP"))),
            key=lambda r: r.concurrency,
        )
        series = [r for r in series if prefix.startswith("SMTP") or r.scenario == prefix]
        if not series:
            continue
        line = ax.plot([r.concurrency for r in series], [r.rate for r in series], marker="o", label=label)
        ax.plot(
            [r.concurrency for r in series],
            [r.ceiling_rate for r in series],
            marker="x",
            linestyle="--",
            color=line[0].get_color(),
            label=f"{label}: no-op ceiling",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("accepted messages / s")
    ax.set_title("Postgate accept throughput against its stack's ceiling")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
