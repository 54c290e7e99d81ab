"""Recording and reading the audit log.

`record` writes one event in the caller's transaction (so a change and its record commit
together, and a change rolled back leaves no record). Services that change settings call
`note_change` with the before/after of what they changed; the request's record (see `audit.http`)
picks those up. Secrets never reach the table: `redact` replaces them wherever they sit.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import repository
from api_service.models import AuditEvent

REDACTED = "[redacted]"
# A key naming any of these holds a secret (Password, ApiToken, WebhookSecret, HttpAuth, csrf_token …).
SECRET_WORDS = ("password", "token", "secret", "privatekey", "private_key", "httpauth", "httpheaders", "authorization", "apikey", "csrf")
NOTES_KEY = "postgate_audit_changes"
COLUMNS = ("id", "occurred_at", "actor", "action", "target_type", "target_id", "server_id", "ip", "outcome", "before", "after")
MAX_VALUE_CHARS = 2000


@dataclass(slots=True)
class Change:
    """A change a service made in this transaction: what, and its settings before and after."""

    target_type: str
    target_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    server_id: int | None = None
    action: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _secret(key: str) -> bool:
    lowered = key.lower().replace("-", "")
    return any(word in lowered for word in SECRET_WORDS)


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every secret replaced, and long strings cut."""
    if isinstance(value, dict):
        return {k: REDACTED if _secret(str(k)) and v not in (None, "", [], {}) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value[:100]]
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)


def note_change(
    *,
    session: AsyncSession,
    target_type: str,
    target_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    server_id: int | None = None,
    action: str = "",
) -> None:
    """Remember a change for the record of the request (or command) that made it."""
    changes: list[Change] = session.info.setdefault(NOTES_KEY, [])
    changes.append(
        Change(target_type=target_type, target_id=str(target_id), before=before, after=after, server_id=server_id, action=action)
    )


def take_changes(*, session: AsyncSession) -> list[Change]:
    changes: list[Change] = session.info.pop(NOTES_KEY, [])
    return changes


async def record(
    *,
    session: AsyncSession,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    server_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str = "",
    outcome: str = "ok",
) -> None:
    """Append one event in the caller's transaction. `actor`: `user:<name>`, `token:<name>#<id>`,
    `account-token:<name>#<id>`, `shell:<os user>`…; `before`/`after` are redacted here."""
    await repository.add(
        session=session,
        event=AuditEvent(
            actor=actor[:200],
            action=action[:200],
            target_type=target_type[:50],
            target_id=str(target_id)[:200],
            server_id=server_id,
            before=None if before is None else redact(before),
            after=None if after is None else redact(after),
            ip=ip[:64],
            outcome=outcome[:20],
        ),
    )


async def record_changes(*, session: AsyncSession, actor: str, action: str, ip: str = "", server_id: int | None = None) -> int:
    """One event for each change noted in this transaction (`note_change`); how many."""
    changes = take_changes(session=session)
    for change in changes:
        await record(
            session=session,
            actor=actor,
            action=change.action or action,
            target_type=change.target_type,
            target_id=change.target_id,
            server_id=change.server_id if change.server_id is not None else server_id,
            before=change.before,
            after=change.after,
            ip=ip,
        )
    return len(changes)


async def search(
    *,
    session: AsyncSession,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    server_id: int | None = None,
    count: int = 50,
    offset: int = 0,
) -> tuple[int, list[AuditEvent]]:
    return await repository.search(
        session=session,
        since=since,
        until=until,
        actor=actor,
        action=action,
        target=target,
        server_id=server_id,
        count=count,
        offset=offset,
    )


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "server_id": event.server_id,
        "ip": event.ip,
        "outcome": event.outcome,
        "before": event.before,
        "after": event.after,
    }


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out).writerow(COLUMNS)
    return out.getvalue()


def csv_line(event: AuditEvent) -> str:
    row = as_dict(event)
    out = io.StringIO()
    csv.writer(out).writerow(
        [json.dumps(row[c], sort_keys=True) if c in ("before", "after") and row[c] is not None else _cell(row[c]) for c in COLUMNS]
    )
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def jsonl_line(event: AuditEvent) -> str:
    return json.dumps(as_dict(event), sort_keys=False) + "\n"


async def export(
    *,
    session: AsyncSession,
    fmt: str,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    server_id: int | None = None,
) -> AsyncIterator[str]:
    """The matching events, oldest first, as CSV (with a header) or JSON Lines."""
    if fmt == "csv":
        yield csv_header()
    async for event in repository.stream(
        session=session, since=since, until=until, actor=actor, action=action, target=target, server_id=server_id
    ):
        yield csv_line(event) if fmt == "csv" else jsonl_line(event)


async def purge(*, session: AsyncSession, days: int, limit: int, now: datetime | None = None) -> int:
    """Delete one batch of events older than `days` (AUDIT_RETENTION_DAYS)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return await repository.purge_older_than(session=session, cutoff=cutoff, limit=limit)
