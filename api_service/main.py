"""App assembly: `create_app(settings)` with a lifespan that owns the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api_service.audit.http import record_request
from api_service.bounces.router import router as bounces_router
from api_service.bulk.router import router as bulk_router
from api_service.config import Settings, get_settings
from api_service.console.mount import install_console
from api_service.core import geoip
from api_service.core.errors import UnhandledErrors, install_error_handlers
from api_service.core.observe import RequestLogMiddleware, RouteTap
from api_service.core.ratelimit import RateLimitMiddleware
from api_service.core.wire import PostmarkWireMiddleware
from api_service.data_removals.router import router as data_removals_router
from api_service.db import create_engine, create_sessionmaker
from api_service.delivery.router import router as delivery_router
from api_service.delivery.schedule_router import router as schedule_router
from api_service.delivery.tls_router import router as tls_reports_router
from api_service.dmarc.router import router as dmarc_router
from api_service.domains.router import router as domains_router
from api_service.email.intake import Intake
from api_service.email.router import router as email_router
from api_service.health.router import router as health_router
from api_service.inbound.router import router as inbound_router
from api_service.messages.router import router as messages_router
from api_service.operations import service as operations
from api_service.operations.router import router as operations_router
from api_service.senders.confirmation import router as sender_confirmation_router
from api_service.senders.router import router as senders_router
from api_service.servers import token_service
from api_service.servers.router import router as servers_router
from api_service.smtp_gateway.router import router as smtp_gateway_router
from api_service.stats.router import router as stats_router
from api_service.streams.router import router as streams_router
from api_service.suppressions.router import router as suppressions_router
from api_service.templates.router import router as templates_router
from api_service.tracking.router import public_router as tracking_public_router
from api_service.tracking.router import router as tracking_router
from api_service.webhooks.router import router as webhooks_router

DESCRIPTION = """
Postgate speaks Postmark's REST API. Authenticate with `X-Postmark-Server-Token` (send, bulk, server,
messages, bounces, streams, stats, templates) or `X-Postmark-Account-Token` (servers, senders, domains, template push, data removals).
Every error is `{"ErrorCode": N, "Message": "…"}` with Postmark's codes.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.geo = await geoip.load(settings.geoip_database)
        # Writers 0: each single send in its own transaction, without grouping.
        app.state.intake = Intake(
            sessionmaker=app.state.sessionmaker,
            message_id_domain=settings.message_id_domain,
            writers=settings.email_group_writers,
            max_messages=settings.email_group_max_messages,
            window_seconds=settings.email_group_window_ms / 1000,
        )
        try:
            async with operations.running(engine=engine, settings=settings) as rate_limits, token_service.revocations_heard(engine):
                app.state.rate_limits = rate_limits
                yield
        finally:
            await app.state.intake.close()
            await engine.dispose()

    app = FastAPI(
        title="Postgate",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by the console package from local assets; FastAPI's own pages load a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.audit_hook = record_request
    install_error_handlers(app)
    # Innermost first: the route tap and the rate limit see paths the wire middleware normalised.
    app.add_middleware(RouteTap)
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(PostmarkWireMiddleware)
    for router in (
        health_router,
        email_router,
        servers_router,
        senders_router,
        sender_confirmation_router,
        domains_router,
        dmarc_router,
        messages_router,
        schedule_router,
        bounces_router,
        smtp_gateway_router,
        webhooks_router,
        suppressions_router,
        streams_router,
        tracking_router,
        tracking_public_router,
        stats_router,
        templates_router,
        inbound_router,
        data_removals_router,
        operations_router,
        bulk_router,
        tls_reports_router,
        delivery_router,
    ):
        app.include_router(router)
    install_console(app)
    app.add_middleware(UnhandledErrors)  # answers what no handler took, without Starlette's re-raise
    app.add_middleware(RequestLogMiddleware)  # outermost: times and logs every request, whoever answers it
    return app
