"""`/domains` (account token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import Session, TransactionalRoute
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.domains import service
from api_service.models import Domain
from api_service.servers.deps import AccountAuth
from shared.schemas.base import ErrorResponse
from shared.schemas.senders import DomainCreate, DomainDetails, DomainEdit, DomainList, DomainSummary

router = APIRouter(route_class=TransactionalRoute, tags=["Domains"], dependencies=[AccountAuth])
ERRORS = error_responses(
    invalid="ErrorCodes 511 invalid ReturnPathDomain, 512 exists, 514 Name required, 515 Name too long, 516 Name invalid",
    not_found="ErrorCode 510: no such domain",
    account=True,
)


def details(domain: Domain) -> DomainDetails:
    return DomainDetails(
        ID=domain.id,
        Name=domain.name,
        SPFVerified=domain.spf_verified,
        DKIMVerified=domain.dkim_verified,
        DKIMHost=f"{domain.dkim_selector}._domainkey.{domain.name}" if domain.dkim_selector else "",
        DKIMTextValue=f"k=rsa;p={domain.dkim_public_key}" if domain.dkim_public_key else "",
        ReturnPathDomain=domain.return_path_domain,
        ReturnPathDomainVerified=domain.return_path_verified,
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
async def create_domain(session: Session, data: Annotated[DomainCreate, Body()]) -> DomainDetails:
    """Add a sending domain; every address on it can be used as From at once."""
    return details(await service.create_domain(session=session, data=data))


@router.get("/domains/{domain_id}", response_model=DomainDetails, responses=ERRORS)
async def get_domain(domain_id: EntityId, session: Session) -> DomainDetails:
    """Get a domain with its DNS details."""
    return details(await service.get_domain_or_raise(session=session, domain_id=domain_id))


@router.put("/domains/{domain_id}", response_model=DomainDetails, responses=ERRORS)
async def edit_domain(domain_id: EntityId, session: Session, data: Annotated[DomainEdit, Body()]) -> DomainDetails:
    """Change a domain's return-path domain."""
    return details(await service.edit_domain(session=session, domain_id=domain_id, data=data))


@router.put("/domains/{domain_id}/verifydkim", response_model=DomainDetails, responses=ERRORS)
async def verify_dkim(domain_id: EntityId, session: Session) -> DomainDetails:
    """Check that DKIMHost publishes DKIMTextValue in DNS; DKIMVerified tells the result."""
    return details(await service.verify_dkim(session=session, domain_id=domain_id))


@router.delete("/domains/{domain_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_domain(domain_id: EntityId, session: Session) -> ErrorResponse:
    """Delete a domain."""
    name = await service.delete_domain(session=session, domain_id=domain_id)
    return ErrorResponse(ErrorCode=0, Message=f"Domain {name} removed.")
