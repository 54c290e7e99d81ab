"""Sender health: every domain's and source IP's checks with the fix, a check on demand, and the DMARC
and TLS reports received for a domain."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, Signed, notice_of, redirect
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.dmarc import service as dmarc_service
from api_service.domains import health_service
from api_service.domains.dns import lookup_for
from api_service.domains.health_views import health_details, ip_details

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)
REPORT_DAYS = 30


@router.get("/health")
async def sender_health(request: Request, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    config = health_service.health_config(settings, helo=settings.helo_name or socket.getfqdn())
    views, ips = await health_service.overview(session=session, config=config)
    return render(
        request,
        "sender_health.html",
        {
            "identity": identity,
            "section": "health",
            "domains": [health_details(v) for v in views],
            "ips": [ip_details(ip) for ip in ips],
            "interval_hours": settings.sender_health_interval_seconds / 3600,
            "notice": notice_of(request),
        },
    )


@router.post("/health/{domain_id}/check")
async def check_now(domain_id: EntityId, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    config = health_service.health_config(settings, helo=settings.helo_name or socket.getfqdn())
    await health_service.check_domain(session=session, domain_id=domain_id, dns=lookup_for(settings.dns_resolver), config=config)
    return redirect(f"{PREFIX}/health#domain-{domain_id}", notice="health-checked")


@router.get("/domains/{domain_id}/reports")
async def domain_reports(request: Request, domain_id: EntityId, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    """The DMARC sources and failure reports and the TLS reports of a domain, last 30 days."""
    dmarc = await dmarc_service.summary(
        session=session,
        domain_id=domain_id,
        days=REPORT_DAYS,
        ours=dmarc_service.our_networks(source_ips=settings.source_ip_list, spf_text_value=settings.spf_text_value),
    )
    tls = await dmarc_service.tls_summary(session=session, domain_id=domain_id, days=REPORT_DAYS)
    return render(
        request,
        "domain_reports.html",
        {"identity": identity, "section": "health", "dmarc": dmarc, "tls": tls, "report_address": settings.dmarc_report_mailbox},
    )
