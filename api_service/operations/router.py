"""`GET /metrics`: Prometheus exposition of the API processes and of the deployment."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api_service.core import metrics
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.errors import InvalidToken
from api_service.operations import service

router = APIRouter(route_class=TransactionalRoute, tags=["Operations"], include_in_schema=False)


@router.get("/metrics")
async def get_metrics(request: Request, session: Session, settings: AppSettings) -> Response:
    """Prometheus metrics; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    if not metrics.authorized(request.headers.get("authorization"), settings.metrics_token):
        raise InvalidToken("Request does not contain a valid metrics token. Send the header 'Authorization: Bearer <METRICS_TOKEN>'.")
    body = await service.scrape(
        session=session, engine=request.app.state.engine, pool_limit=settings.db_pool_size + settings.db_max_overflow, settings=settings
    )
    return Response(body, media_type=metrics.CONTENT_TYPE)
