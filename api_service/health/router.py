from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_service.core.errors import DATABASE_OUTAGE
from api_service.db import ping

router = APIRouter(tags=["Health"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the API and its database answer, 503 otherwise; status only, no details."""
    try:
        await ping(request.app.state.engine)
    except Exception as exc:  # any failure to reach the database means "not healthy"
        # Anyone may ask, so the reason goes to the log, not into the answer.
        DATABASE_OUTAGE.failed(exc)
        return JSONResponse({"status": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
    DATABASE_OUTAGE.succeeded()  # "reachable again", once, when an outage was being reported
    return JSONResponse({"status": "ok"})
