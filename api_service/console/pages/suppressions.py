"""A stream's suppression list: search, suppress addresses, lift one, export as CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, ServerPage, Signed, field, notice_of, redirect, sendable_streams, server_url
from api_service.deps import Session, TransactionalRoute
from api_service.models import Server
from api_service.suppressions import service as suppressions_service
from shared.constants import DEFAULT_MESSAGE_STREAM
from shared.schemas.suppressions import SuppressionAddress, SuppressionChange, SuppressionResult

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def suppressions_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    *,
    stream: str,
    error: str | None = None,
    status: int = 200,
    results: list[Any] | None = None,
) -> HTMLResponse:
    stream_id = await suppressions_service.check_stream(session=session, server=server, stream=stream)
    email = request.query_params.get("email", "").strip()[:320]
    rows = await suppressions_service.dump(
        session=session, server_id=server.id, stream=stream_id, reason=None, origin=None, email=email or None, from_date=None, to_date=None
    )
    return render(
        request,
        "suppressions.html",
        {
            "identity": identity,
            "server": server,
            "section": "suppressions",
            "stream": stream_id,
            "streams": await sendable_streams(session, server),
            "rows": rows,
            "email": email,
            "error": error,
            "results": results or [],
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/suppressions")
async def suppressions(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await suppressions_page(request, session, server, identity, stream=request.query_params.get("stream") or DEFAULT_MESSAGE_STREAM)


def parse_addresses(text: str) -> list[str]:
    return [a for a in re.split(r"[\s,;]+", text) if a]


async def change_list(
    request: Request, session: AsyncSession, server: Server, identity: access.Identity, *, lift: bool, addresses: list[str], stream: str
) -> Response:
    """Suppress (or lift) addresses; addresses the service refused one by one re-render the page with them."""
    data = SuppressionChange(Suppressions=[SuppressionAddress(EmailAddress=a) for a in addresses])
    stream_id = stream

    async def change() -> list[SuppressionResult]:
        nonlocal stream_id
        stream_id = await suppressions_service.check_stream(session=session, server=server, stream=stream)
        apply = suppressions_service.lift_many if lift else suppressions_service.suppress_many
        return await apply(session=session, server=server, stream=stream_id, data=data)

    async def done(results: list[SuppressionResult]) -> Response:
        refused = [r for r in results if r.Status == "Failed"]
        if refused:
            message = "The suppression was not removed." if lift else "Some addresses were not suppressed."
            return await suppressions_page(request, session, server, identity, stream=stream_id, results=refused, status=422, error=message)
        return redirect(server_url(server, "suppressions") + f"?stream={stream_id}", notice="removed" if lift else "suppressed")

    async def refused(r: Refused) -> Response:
        return await suppressions_page(
            request, session, r.server, identity, stream=DEFAULT_MESSAGE_STREAM, error=r.message, status=r.status
        )

    return await submit(session=session, server=server, change=change, done=done, refused=refused)


@router.post("/servers/{server_id}/suppressions")
async def add_suppressions(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    addresses = parse_addresses(field(form, "addresses"))
    stream = field(form, "stream", DEFAULT_MESSAGE_STREAM)
    return await change_list(request, session, server, identity, lift=False, addresses=addresses, stream=stream)


@router.post("/servers/{server_id}/suppressions/delete")
async def remove_suppression(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    stream = field(form, "stream", DEFAULT_MESSAGE_STREAM)
    return await change_list(request, session, server, identity, lift=True, addresses=[field(form, "email")], stream=stream)


def csv_cell(value: str) -> str:
    """A spreadsheet must not run a cell as a formula (OWASP CSV injection): such cells get a leading quote."""
    return "'" + value if value.startswith(FORMULA_START) else value


def suppressions_csv(rows: list[tuple[str, str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["EmailAddress", "SuppressionReason", "Origin", "CreatedAt"])
    writer.writerows([[csv_cell(c) for c in row] for row in rows])
    return out.getvalue()


@router.get("/servers/{server_id}/suppressions.csv")
async def export_suppressions(request: Request, server: ServerPage, session: Session) -> Response:
    stream_id = await suppressions_service.check_stream(
        session=session, server=server, stream=request.query_params.get("stream") or DEFAULT_MESSAGE_STREAM
    )
    rows = await suppressions_service.dump(
        session=session, server_id=server.id, stream=stream_id, reason=None, origin=None, email=None, from_date=None, to_date=None
    )
    body = suppressions_csv([(r.email, r.reason, r.origin, r.created_at.astimezone(UTC).isoformat()) for r in rows])
    filename = f"suppressions-server{server.id}-{stream_id}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
