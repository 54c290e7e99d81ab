"""`postgate import` (or `python -m api_service.importer`): move a Postmark account into this Postgate.

    postgate import --account-token PM_ACCOUNT_TOKEN                 # dry run: what would change
    postgate import --account-token PM_ACCOUNT_TOKEN --apply         # do it
    postgate import --server-token T1 --server-token T2 --source-url http://other-postgate:8000

It reads the source over HTTP with Postmark's API and writes into the database of `DATABASE_URL` through
Postgate's own services, beside the API and the worker (it needs no token of this Postgate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from api_service.config import Settings, get_settings
from api_service.db import create_engine, create_sessionmaker
from api_service.importer.service import Action, Report, import_account
from api_service.importer.source import POSTMARK_API, PostmarkSource, SourceError


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postgate import",
        description="Copy servers, streams, templates, webhooks, suppressions, sender signatures and domains from a "
        "Postmark account (or another Postgate) into this Postgate. A dry run unless --apply.",
    )
    parser.add_argument(
        "--account-token",
        default=os.environ.get("POSTMARK_ACCOUNT_TOKEN"),
        help="the source's account token (servers, signatures, domains); env POSTMARK_ACCOUNT_TOKEN",
    )
    parser.add_argument(
        "--server-token",
        action="append",
        default=[t for t in os.environ.get("POSTMARK_SERVER_TOKENS", "").split(",") if t.strip()],
        help="a source server token (repeat it; env POSTMARK_SERVER_TOKENS, comma-separated): reads that server's "
        "streams, templates, webhooks and suppressions",
    )
    parser.add_argument("--source-url", default=POSTMARK_API, help=f"the source API (default {POSTMARK_API})")
    parser.add_argument("--apply", action="store_true", help="write the changes (without it, only report them)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every object, unchanged ones too")
    return parser


def summary_table(report: Report, *, applied: bool) -> Table:
    verbs = ("created", "updated") if applied else ("to create", "to update")
    table = Table(title="Import " + ("done" if applied else "plan (dry run: nothing was written)"))
    table.add_column("What")
    for heading in (*verbs, "unchanged", "skipped", "failed"):
        table.add_column(heading, justify="right")
    for section, counts in report.counts().items():
        if sum(counts.values()):
            table.add_row(
                section.value,
                *(str(counts[a]) for a in (Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.SKIPPED, Action.FAILED)),
            )
    return table


def changes_table(report: Report, *, verbose: bool) -> Table | None:
    rows = [c for c in report.changes if verbose or c.action is not Action.UNCHANGED]
    if not rows:
        return None
    table = Table(title="Changes")
    for heading in ("Server", "What", "Name", "Action", "Detail"):
        table.add_column(heading)
    for change in rows:
        table.add_row(change.owner, change.section.value, change.name, change.action.value, change.detail)
    return table


def print_report(console: Console, report: Report, *, applied: bool, verbose: bool) -> None:
    changes = changes_table(report, verbose=verbose)
    if changes is not None:
        console.print(changes)
    console.print(summary_table(report, applied=applied))
    if report.tokens:
        tokens = Table(title="New server tokens (shown this once: Postgate keeps only their digests)")
        tokens.add_column("Server")
        tokens.add_column("X-Postmark-Server-Token")
        for name, token in report.tokens.items():
            tokens.add_row(name, token)
        console.print(tokens)
    if report.dns:
        dns = Table(title="DNS records to publish (new DKIM keys: the source's private keys cannot be exported)")
        for heading in ("Domain", "Type", "Host", "Value"):
            dns.add_column(heading, overflow="fold")
        for record in report.dns:
            dns.add_row(record.domain, record.kind, record.host, record.value)
        console.print(dns)
    if report.nothing_to_do:
        console.print("Nothing to do: this Postgate already has everything the source has.")
    elif not applied:
        console.print("Run again with --apply to make these changes.")


class ProgressStep:
    """The importer's steps as a rich progress bar."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self.bar, self.task, self.started = bar, task, False

    def __call__(self, text: str, total: int | None = None) -> None:
        if total is not None:
            self.bar.update(self.task, total=total)
        self.bar.update(self.task, description=text, advance=1 if self.started else 0)
        self.started = True


async def run(args: argparse.Namespace, settings: Settings, console: Console) -> Report:
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with PostmarkSource(base_url=args.source_url, account_token=args.account_token, server_tokens=args.server_token) as source:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("importing", total=None)
                async with create_sessionmaker(engine)() as session, session.begin():
                    report = await import_account(
                        session=session, source=source, apply=args.apply, settings=settings, step=ProgressStep(bar, task)
                    )
                    if not args.apply:
                        await session.rollback()  # a dry run writes nothing; this is only to be sure
        return report
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None, console: Console | None = None) -> int:
    args = parser().parse_args(argv)
    console = console or Console()
    try:
        report = asyncio.run(run(args, settings or get_settings(), console))
    except SourceError as exc:
        console.print(f"[red]Cannot read the source:[/red] {exc}")
        return 2
    print_report(console, report, applied=args.apply, verbose=args.verbose)
    return 1 if report.failed else 0
