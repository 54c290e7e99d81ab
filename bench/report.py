"""RESULTS.md and the throughput plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.rest import Row

TARGETS = """\
| Target (2 cores, PostgreSQL on the same box) | Met? |
|---|---|
| REST single sends ≥ 2,000 msg/s at 64 clients, p99 ≤ 50 ms, ≥ 0.4 × ceiling | {rest} |
| REST batch ≥ 10,000 msg/s | {batch} |
| SMTP ≥ 1,000 msg/s on reused connections, ≥ 0.5 × ceiling | not measured yet |
| Delivery ≥ 1,000 msg/s to a local sink; accept-to-delivered p99 ≤ 1 s | not measured yet |
| Memory flat under a 10-minute soak | not measured yet |
"""


def _met(ok: bool) -> str:
    return "**yes**" if ok else "no"


def write(path: Path, *, rows: list[Row], meta: dict[str, Any]) -> None:
    rest64 = next((r for r in rows if r.scenario == "REST /email" and r.concurrency == 64), None)
    batch = next((r for r in rows if r.scenario.startswith("REST /email/batch")), None)
    lines = ["# Postgate benchmark results", ""]
    lines.append(
        TARGETS.format(
            rest=_met(rest64 is not None and rest64.rate >= 2000 and rest64.p99_ms <= 50 and rest64.ratio >= 0.4)
            + (f" ({rest64.rate:,.0f} msg/s, p99 {rest64.p99_ms:.0f} ms, {rest64.ratio:.2f} × ceiling)" if rest64 else ""),
            batch=_met(batch is not None and batch.rate >= 10000) + (f" ({batch.rate:,.0f} msg/s)" if batch else ""),
        )
    )
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += [
        "",
        "## Scenarios",
        "",
        "| Scenario | Clients | Messages | msg/s | p50 ms | p99 ms | Ceiling msg/s | Ratio | CPU ms/msg api · pg · loadgen | Peak RSS MB api · pg | Errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = " · ".join(f"{r.cpu_per_msg_ms.get(k, 0):.2f}" for k in ("api", "postgres", "loadgen"))
        rss = " · ".join(f"{r.peak_rss_mb.get(k, 0):.0f}" for k in ("api", "postgres"))
        lines.append(
            f"| {r.scenario} | {r.concurrency} | {r.messages:,} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.ceiling_rate:,.0f} | {r.ratio:.2f} | {cpu} | {rss} | {r.errors} |"
        )
    plot = path.with_name(path.stem.replace("RESULTS", "throughput") + ".png") if "RESULTS" in path.stem else path.with_suffix(".png")
    _plot(plot, rows)
    lines += ["", f"![throughput against concurrency]({plot.name})", ""]
    path.write_text("\n".join(lines) + "\n")


def _plot(path: Path, rows: list[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in rows if r.scenario == "REST /email"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r.concurrency for r in single], [r.rate for r in single], marker="o", label="POST /email")
    ax.plot([r.concurrency for r in single], [r.ceiling_rate for r in single], marker="o", linestyle="--", label="no-op FastAPI ceiling")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("accepted messages / s")
    ax.set_title("Postgate accept throughput")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
