"""`python -m bench [--quick] [--out PATH]`: run the scenarios, write RESULTS.md and a plot.

Loopback only, bounded in time; it creates its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from api_service.embedded_db import drop_database, ensure_database, migrate, start_embedded, with_database
from bench import delivery, report, rest, smtp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every scenario")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--soak", type=float, default=None, help="seconds of the memory soak (default 600, quick 5)")
    parser.add_argument("--only", choices=["rest", "smtp", "delivery"], action="append", help="run only these scenario groups")
    args = parser.parse_args(argv)

    handle: Any = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        handle, base = start_embedded()
    url = with_database(base, f"postgate_bench_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    groups = args.only or ["rest", "smtp", "delivery"]
    soak_seconds = args.soak if args.soak is not None else (5.0 if args.quick else 600.0)
    rows = []
    soak_result = None
    try:
        if "rest" in groups:
            rows += rest.run(database_url=url, quick=args.quick)
        if "smtp" in groups:
            rows += smtp.run(database_url=url, quick=args.quick)
        if "delivery" in groups:
            rows += delivery.run(database_url=url, quick=args.quick)
        if soak_seconds > 0:
            soak_result = delivery.soak(database_url=url, seconds=soak_seconds)
    finally:
        drop_database(url)
    del handle
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
