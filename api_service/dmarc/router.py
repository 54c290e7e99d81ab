"""`/domains/{id}/dmarc` and `/domains/{id}/tlsreports` (account token, beyond Postmark)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api_service.core.errors import error_responses
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.dmarc import service
from api_service.servers.deps import AccountAuth
from shared.schemas.sender_health import DmarcSummary, TlsReportList

router = APIRouter(route_class=TransactionalRoute, tags=["Domains"], dependencies=[AccountAuth])
ERRORS = error_responses(invalid="days must be 1 to 366", not_found="ErrorCode 510: no such domain", account=True)
Days = Annotated[int, Query(ge=1, le=366, description="The last N days of reports")]


@router.get("/domains/{domain_id}/dmarc", response_model=DmarcSummary, responses=ERRORS)
async def dmarc_summary(domain_id: EntityId, session: Session, settings: AppSettings, days: Days = 30) -> DmarcSummary:
    """Beyond Postmark: the DMARC aggregate reports received for the domain, per source IP (with PTR, volume,
    aligned SPF/DKIM and DMARC passes, and whether the source is Postgate's), and its latest failure reports."""
    return await service.summary(
        session=session,
        domain_id=domain_id,
        days=days,
        ours=service.our_networks(source_ips=settings.source_ip_list, spf_text_value=settings.spf_text_value),
    )


@router.get("/domains/{domain_id}/tlsreports", response_model=TlsReportList, responses=ERRORS)
async def tls_reports(domain_id: EntityId, session: Session, days: Days = 30) -> TlsReportList:
    """Beyond Postmark: the SMTP TLS reports (RFC 8460) received for the domain, newest first."""
    return await service.tls_summary(session=session, domain_id=domain_id, days=days)
