"""RESULTS.md and the throughput plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.rest import Row


def _met(ok: bool) -> str:
    return "**yes**" if ok else "no"


def _find(rows: list[Row], prefix: str, concurrency: int | None = None) -> list[Row]:
    return [r for r in rows if r.scenario.startswith(prefix) and (concurrency is None or r.concurrency == concurrency)]


def targets(rows: list[Row], soak: dict[str, Any] | None) -> list[str]:
    lines = ["| Target (2 cores, PostgreSQL on the same box) | Met? | Measured |", "|---|---|---|"]
    rest64 = _find(rows, "REST /email", 64)
    if rest64:
        r = rest64[0]
        ok = r.rate >= 2000 and r.p99_ms <= 50 and r.ratio >= 0.4
        lines.append(
            f"| REST single sends ≥ 2,000 msg/s at 64 clients, p99 ≤ 50 ms, ≥ 0.4 × ceiling | {_met(ok)} | {r.rate:,.0f} msg/s, p99 {r.p99_ms:.0f} ms, {r.ratio:.2f} × ceiling |"
        )
    batch = _find(rows, "REST /email/batch")
    if batch:
        lines.append(f"| REST batch ≥ 10,000 msg/s | {_met(batch[0].rate >= 10000)} | {batch[0].rate:,.0f} msg/s |")
    smtp = sorted(_find(rows, "SMTP accept, reused"), key=lambda r: -r.rate)
    if smtp:
        r = smtp[0]
        lines.append(
            f"| SMTP ≥ 1,000 msg/s on reused connections, ≥ 0.5 × ceiling | {_met(r.rate >= 1000 and r.ratio >= 0.5)} | {r.rate:,.0f} msg/s at {r.concurrency} connections, {r.ratio:.2f} × ceiling |"
        )
    drain = sorted(_find(rows, "Delivery to a local sink"), key=lambda r: -r.rate)
    latency = _find(rows, "Accept → delivered")
    if drain and latency:
        ok = drain[0].rate >= 1000 and latency[0].p99_ms <= 1000
        lines.append(
            f"| Delivery ≥ 1,000 msg/s to a local sink; accept-to-delivered p99 ≤ 1 s | {_met(ok)} | {drain[0].rate:,.0f} msg/s with {drain[0].concurrency} workers; p99 {latency[0].p99_ms:.0f} ms |"
        )
    if soak:
        growth = soak["rss_end_mb"] / soak["rss_after_warmup_mb"] - 1
        lines.append(
            f"| Memory flat under a 10-minute soak | {_met(growth <= 0.1 and soak['seconds'] >= 600)} | {soak['seconds']:.0f} s soak: RSS {soak['rss_after_warmup_mb']:.0f} → {soak['rss_end_mb']:.0f} MB after warm-up ({growth:+.1%}), {soak['messages']:,} messages |"
        )
    return lines


def write(path: Path, *, rows: list[Row], meta: dict[str, Any], soak: dict[str, Any] | None = None) -> None:
    lines = ["# Postgate benchmark results", "", *targets(rows, soak), ""]
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
