"""`/domains` (account token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body

from api_service.config import Settings
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.domains import health_service, service
from api_service.domains.deps import Dns, Health
from api_service.domains.health_views import health_details
from api_service.domains.views import dns_details, ed25519_details, tracking_cname_value
from api_service.models import Domain
from api_service.servers.deps import AccountAuth
from shared.constants import ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.sender_health import DomainHealth
from shared.schemas.senders import DomainCreate, DomainDetails, DomainEdit, DomainList, DomainSummary

router = APIRouter(route_class=TransactionalRoute, tags=["Domains"], dependencies=[AccountAuth])
ERRORS = error_responses(
    invalid="ErrorCodes 505 a new DKIM key already waits, 511 invalid ReturnPathDomain or TrackingDomain, 512 exists, 514 Name required, "
    "515 Name too long, 516 Name invalid",
    not_found="ErrorCode 510: no such domain",
    account=True,
)


def details(domain: Domain, settings: Settings) -> DomainDetails:
    now = datetime.now(UTC)
    dns = dns_details(domain, settings=settings, now=now)
    return DomainDetails(
        ID=domain.id,
        Name=domain.name,
        TrackingDomain=domain.tracking_domain,
        TrackingDomainVerified=domain.tracking_verified,
        TrackingDomainCNAMEValue=tracking_cname_value(settings),
        **ed25519_details(domain, now=now),
        **dns.model_dump(),
    )


@router.get("/domains", response_model=DomainList, responses=ERRORS)
async def list_domains(session: Session, paging: Paging) -> DomainList:
    """List sending domains."""
    total, rows = await service.list_domains(session=session, count=paging.count, offset=paging.offset)
    return DomainList(
        TotalCount=total,
        Domains=[
            DomainSummary(
                ID=d.id,
                Name=d.name,
                SPFVerified=d.spf_verified,
                DKIMVerified=d.dkim_verified,
                WeakDKIM=False,
                ReturnPathDomainVerified=d.return_path_verified,
            )
            for d in rows
        ],
    )


@router.post("/domains", response_model=DomainDetails, responses=ERRORS)
async def create_domain(session: Session, settings: AppSettings, data: Annotated[DomainCreate, Body()]) -> DomainDetails:
    """Add a sending domain with a new DKIM key; its addresses may send once DKIMHost publishes DKIMTextValue
    (verifyDkim, or the worker's periodic check), or at once with SENDER_AUTO_CONFIRM."""
    return details(await service.create_domain(session=session, data=data, auto_confirm=settings.sender_auto_confirm), settings)


@router.get("/domains/{domain_id}", response_model=DomainDetails, responses=ERRORS)
async def get_domain(domain_id: EntityId, session: Session, settings: AppSettings) -> DomainDetails:
    """Get a domain with its DNS details."""
    return details(await service.get_domain_or_raise(session=session, domain_id=domain_id), settings)


@router.put("/domains/{domain_id}", response_model=DomainDetails, responses=ERRORS)
async def edit_domain(domain_id: EntityId, session: Session, settings: AppSettings, data: Annotated[DomainEdit, Body()]) -> DomainDetails:
    """Change a domain's return-path domain or tracking domain (it must be verified again)."""
    return details(await service.edit_domain(session=session, domain_id=domain_id, data=data), settings)


@router.put("/domains/{domain_id}/verifydkim", response_model=DomainDetails, responses=ERRORS)
async def verify_dkim(domain_id: EntityId, session: Session, settings: AppSettings, dns: Dns) -> DomainDetails:
    """Look the DKIM keys up in DNS: DKIMTextValue at DKIMHost verifies the domain (DKIMVerified); a rotated key
    at DKIMPendingHost replaces the signing key, which becomes DKIMRevoked*."""
    return details(await service.verify_dkim(session=session, domain_id=domain_id, dns=dns), settings)


@router.put("/domains/{domain_id}/verifyreturnpath", response_model=DomainDetails, responses=ERRORS)
async def verify_return_path(domain_id: EntityId, session: Session, settings: AppSettings, dns: Dns) -> DomainDetails:
    """Check that ReturnPathDomain is a CNAME of ReturnPathDomainCNAMEValue (RETURN_PATH_DOMAIN), or has an MX
    that is it or one of its MX hosts; ReturnPathDomainVerified tells the result."""
    domain = await service.verify_return_path(session=session, domain_id=domain_id, dns=dns, target=settings.return_path_domain)
    return details(domain, settings)


@router.put("/domains/{domain_id}/verifytrackingdomain", response_model=DomainDetails, responses=ERRORS)
async def verify_tracking_domain(domain_id: EntityId, session: Session, settings: AppSettings, dns: Dns) -> DomainDetails:
    """Beyond Postmark: check that TrackingDomain is a CNAME of TrackingDomainCNAMEValue (the host of
    TRACKING_BASE_URL); once TrackingDomainVerified, the domain's mail has its open and click URLs there."""
    target = tracking_cname_value(settings)
    return details(await service.verify_tracking_domain(session=session, domain_id=domain_id, dns=dns, target=target), settings)


@router.post("/domains/{domain_id}/verifyspf", response_model=DomainDetails, responses=ERRORS)
async def verify_spf(domain_id: EntityId, session: Session, settings: AppSettings, dns: Dns) -> DomainDetails:
    """Check that the domain publishes one SPF record with the mechanisms of SPFTextValue; SPFVerified tells the result."""
    return details(await service.verify_spf(session=session, domain_id=domain_id, dns=dns, wanted=settings.spf_text_value), settings)


@router.put("/domains/{domain_id}/verifydmarc", response_model=DomainHealth, responses=ERRORS)
async def verify_dmarc(domain_id: EntityId, session: Session, dns: Dns, config: Health) -> DomainHealth:
    """Beyond Postmark: run the sender-health checks now (DKIM, SPF for SOURCE_IPS, DMARC policy, alignment and
    reports, bounce and complaint rates, each source IP's PTR, HELO and blocklists); each failing check names the fix."""
    return health_details(await health_service.check_domain(session=session, domain_id=domain_id, dns=dns, config=config))


@router.get("/domains/{domain_id}/health", response_model=DomainHealth, responses=ERRORS)
async def get_health(domain_id: EntityId, session: Session, dns: Dns, config: Health) -> DomainHealth:
    """Beyond Postmark: the last sender-health verdicts (the worker re-checks every SENDER_HEALTH_INTERVAL_SECONDS)."""
    return health_details(await health_service.get_health(session=session, domain_id=domain_id, dns=dns, config=config))


@router.post("/domains/{domain_id}/rotatedkim", response_model=DomainDetails, responses=ERRORS)
async def rotate_dkim(domain_id: EntityId, session: Session, settings: AppSettings) -> DomainDetails:
    """Make a new DKIM key (DKIMPendingHost, DKIMPendingTextValue; DKIMUpdateStatus Pending). The current key
    keeps signing until the new one is seen in DNS; then it is DKIMRevoked* until SafeToRemoveRevokedKeyFromDNS."""
    return details(await service.rotate_dkim(session=session, domain_id=domain_id), settings)


@router.delete("/domains/{domain_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_domain(domain_id: EntityId, session: Session) -> ErrorResponse:
    """Delete a domain."""
    name = await service.delete_domain(session=session, domain_id=domain_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Domain {name} removed.")
