"""`python -m bench [--quick] [--out PATH]`: run the scenarios, write RESULTS.md and a plot.

Loopback only, bounded in time; it creates its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, start_embedded, with_database
from bench import datascale, delivery, report, rest, retention, shaping, smtp
from bench.rest import Row

RUNNERS: dict[str, Callable[..., list[Row]]] = {
    "rest": rest.run,
    "smtp": smtp.run,
    "delivery": delivery.run,
    "shaping": shaping.run,
    "retention": retention.run,
    "datascale": datascale.run,
}
# Run only when asked for (`--only datascale`): filling millions of rows takes minutes and gigabytes.
OPTIONAL = {"datascale"}


def fresh_database(base: str) -> str:
    url = with_database(base, f"postgate_bench_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    return url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every scenario")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--soak", type=float, default=None, help="seconds of the memory soak (default 600, quick 5)")
    parser.add_argument(
        "--only", choices=list(RUNNERS), action="append", help="run only these groups, keeping the others from the last run"
    )
    args = parser.parse_args(argv)

    handle: Any = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        handle, base = start_embedded()
    groups = args.only or [g for g in RUNNERS if g not in OPTIONAL]
    soak_seconds = args.soak if args.soak is not None else (5.0 if args.quick else 600.0)
    saved = args.out.with_suffix(".json")
    # A partial run (--only) keeps the other groups' rows from the last full run.
    previous = json.loads(saved.read_text()) if args.only and saved.exists() else {"rows": [], "soak": None}
    rows = [Row(**{k: v for k, v in r.items() if k != "group"}) for r in previous["rows"] if r["group"] not in groups]
    groups_of = {id(r): g for r, g in zip(rows, [r["group"] for r in previous["rows"] if r["group"] not in groups], strict=True)}
    soak_result = previous["soak"] if soak_seconds <= 0 else None
    for group in groups:
        # Each group gets a database of its own: mail queued by one must not be drained by another's workers.
        url = fresh_database(base)
        try:
            for row in RUNNERS[group](database_url=url, quick=args.quick):
                rows.append(row)
                groups_of[id(row)] = group
        finally:
            drop_database(url)
    if soak_seconds > 0:
        url = fresh_database(base)
        try:
            soak_result = delivery.soak(database_url=url, seconds=soak_seconds)
        finally:
            drop_database(url)
    del handle
    order = list(RUNNERS)
    rows.sort(key=lambda r: order.index(groups_of[id(r)]))
    saved.write_text(json.dumps({"rows": [dict(asdict(r), group=groups_of[id(r)]) for r in rows], "soak": soak_result}, indent=1))
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": ", ".join(f"{p} {version(p)}" for p in ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "aiosmtpd")),
        "mode": "quick (smoke sizes, not representative)" if args.quick else "full",
    }
    report.write(args.out, rows=rows, meta=meta, soak=soak_result)
    print(f"bench: wrote {args.out}")


if __name__ == "__main__":
    main()
