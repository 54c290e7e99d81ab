"""TLS reports (RFC 8460) of direct delivery: the daily reports sent to recipient domains, and the
sessions counted for the days not reported yet."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api_service.console.rendering import PREFIX, render
from api_service.console.web import Signed
from api_service.delivery import tls_service
from api_service.deps import Session, TransactionalRoute

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)
SHOWN = 100


@router.get("/tls-reports")
async def tls_reports(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    domain = request.query_params.get("domain", "").strip()[:253] or None
    total, reports = await tls_service.list_reports(session=session, count=SHOWN, offset=0, domain=domain)
    pending = await tls_service.pending(session=session, today=datetime.now(UTC).date())
    return render(
        request,
        "tls_reports.html",
        {
            "identity": identity,
            "section": "tls-reports",
            "reports": reports,
            "total": total,
            "shown": SHOWN,
            "pending": [p for p in pending if domain is None or p.domain == domain.lower()],
            "domain": domain or "",
        },
    )
