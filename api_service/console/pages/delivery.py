"""The delivery destinations and source IPs: limits, what the workers learned, warm-up (read only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api_service.console.rendering import PREFIX, render
from api_service.console.web import Signed
from api_service.delivery import service as delivery
from api_service.deps import AppSettings, Session, TransactionalRoute

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


@router.get("/delivery")
async def destinations(request: Request, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    return render(
        request,
        "delivery.html",
        {
            "identity": identity,
            "section": "delivery",
            "destinations": await delivery.destinations(session=session, settings=settings),
            "source_ips": await delivery.source_ips(session=session, settings=settings),
        },
    )
