"""The audit log: search by time, actor, action, target and server; export CSV or JSON Lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.audit import service as audit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import Pager
from api_service.console.web import PAGE_SIZE, Signed, page_number, search_dates
from api_service.deps import Session, TransactionalRoute

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

KEYS = ("actor", "action", "target", "server", "fromdate", "todate")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@dataclass(frozen=True, slots=True)
class AuditQuery:
    values: dict[str, str]
    since: datetime | None
    until: datetime | None
    server_id: int | None
    error: str | None

    def filters(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "actor": self.values["actor"] or None,
            "action": self.values["action"] or None,
            "target": self.values["target"] or None,
            "server_id": self.server_id,
        }


def audit_query(request: Request) -> AuditQuery:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in KEYS}
    since, until, error = search_dates(values)
    server_id = int(values["server"]) if values["server"].isdigit() and len(values["server"]) < 19 else None
    if values["server"] and server_id is None:
        error = "Server must be a server ID (a number)."
    return AuditQuery(values=values, since=since, until=until, server_id=server_id, error=error)


@router.get("/audit")
async def audit_page(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    # Who may read the audit log is for the roles (Owner and Admin): every signed-in user until then.
    query = audit_query(request)
    page = page_number(request)
    total, events = await audit.search(session=session, **query.filters(), count=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    shown = {k: v for k, v in query.values.items() if v}
    return render(
        request,
        "audit.html",
        {
            "identity": identity,
            "section": "audit",
            "events": events,
            "pager": Pager(page=page, total=total, size=PAGE_SIZE, query=shown),
            "values": query.values,
            "error": query.error,
            "shown": shown,
        },
        status=422 if query.error else 200,
    )


@router.get("/audit/export")
async def audit_export(request: Request, identity: Signed) -> StreamingResponse:
    """The matching events, oldest first, as a download; read in pages on its own session (the
    response outlives the request's)."""
    query = audit_query(request)
    fmt = request.query_params.get("format", "csv")
    fmt = fmt if fmt in FORMATS else "csv"
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker

    async def lines() -> AsyncIterator[str]:
        async with sessionmaker() as session:
            async for line in audit.export(session=session, fmt=fmt, **query.filters()):
                yield line

    headers = {"Content-Disposition": f'attachment; filename="postgate-audit.{fmt}"'}
    return StreamingResponse(lines(), media_type=FORMATS[fmt], headers=headers)
