from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_service.core.errors import DATABASE_OUTAGE, error_responses
from api_service.core.geoip import Locator
from api_service.db import ping
from api_service.servers.deps import AccountAuth

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


@router.get(
    "/health/details",
    dependencies=[AccountAuth],
    responses=error_responses(invalid="Nothing to get wrong: no parameters", account=True),
)
async def health_details(request: Request) -> JSONResponse:
    """The account token's view of what the API runs with: the GeoIP database in use and its date."""
    locator: Locator = request.app.state.geo
    return JSONResponse({"GeoIP": locator.info.wire()})
