from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_service.db import ping

router = APIRouter(tags=["Health"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the API and its database answer, 503 otherwise."""
    try:
        await ping(request.app.state.engine)
    except Exception as exc:  # any failure to reach the database means "not healthy"
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
