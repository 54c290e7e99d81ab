"""`/senders` (account token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body

from api_service.config import Settings
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.domains.deps import Dns
from api_service.domains.views import dns_details
from api_service.senders import service
from api_service.servers.deps import AccountAuth
from shared.constants import ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.senders import SenderCreate, SenderDetails, SenderEdit, SenderList, SenderSummary

router = APIRouter(route_class=TransactionalRoute, tags=["Sender signatures"], dependencies=[AccountAuth])
ERRORS = error_responses(
    invalid="ErrorCodes 504 exists, 505 a new DKIM key already waits, 506 already confirmed, 510 no Domain for requestNewDkim, "
    "520 FromEmail and Name required, 521 field too long, 522 invalid address, 406 the address is suppressed on the system server",
    not_found="ErrorCode 501: no such sender signature",
    account=True,
)


def details(found: service.SignatureView, settings: Settings) -> SenderDetails:
    signature = found.signature
    dns = dns_details(found.domain, settings=settings, now=datetime.now(UTC))
    rp_verified = (
        found.domain is not None and found.domain.return_path_verified and found.domain.return_path_domain == signature.return_path_domain
    )
    return SenderDetails(
        **dns.model_dump(exclude={"SPFVerified", "SPFHost", "ReturnPathDomain", "ReturnPathDomainVerified"}),
        ID=signature.id,
        Domain=signature.domain,
        EmailAddress=signature.email,
        ReplyToEmailAddress=signature.reply_to_email,
        Name=signature.name,
        Confirmed=signature.confirmed,
        ConfirmationPersonalNote=signature.confirmation_personal_note,
        SPFVerified=signature.spf_verified,
        SPFHost=signature.domain,
        ReturnPathDomain=signature.return_path_domain,
        ReturnPathDomainVerified=bool(signature.return_path_domain) and rp_verified,
    )


@router.get("/senders", response_model=SenderList, responses=ERRORS)
async def list_senders(session: Session, paging: Paging) -> SenderList:
    """List sender signatures."""
    total, rows = await service.list_signatures(session=session, count=paging.count, offset=paging.offset)
    return SenderList(
        TotalCount=total,
        SenderSignatures=[
            SenderSummary(
                ID=s.id, Domain=s.domain, EmailAddress=s.email, ReplyToEmailAddress=s.reply_to_email, Name=s.name, Confirmed=s.confirmed
            )
            for s in rows
        ],
    )


@router.post("/senders", response_model=SenderDetails, responses=ERRORS)
async def create_sender(session: Session, settings: AppSettings, data: Annotated[SenderCreate, Body()]) -> SenderDetails:
    """Create a sender signature. A confirmation link is mailed to FromEmail, and the signature can be used as From
    once it is followed (or at once with SENDER_AUTO_CONFIRM, or when its domain is a confirmed Domain)."""
    return details(await service.create_signature(session=session, data=data, settings=settings), settings)


@router.get("/senders/{signature_id}", response_model=SenderDetails, responses=ERRORS)
async def get_sender(signature_id: EntityId, session: Session, settings: AppSettings) -> SenderDetails:
    """Get a sender signature, with the DNS details of its domain."""
    return details(await service.get_signature_view(session=session, signature_id=signature_id), settings)


@router.put("/senders/{signature_id}", response_model=SenderDetails, responses=ERRORS)
async def edit_sender(
    signature_id: EntityId, session: Session, settings: AppSettings, data: Annotated[SenderEdit, Body()]
) -> SenderDetails:
    """Edit a sender signature."""
    return details(await service.edit_signature(session=session, signature_id=signature_id, data=data), settings)


@router.post("/senders/{signature_id}/resend", response_model=ErrorResponse, responses=ERRORS)
async def resend_confirmation(signature_id: EntityId, session: Session, settings: AppSettings) -> ErrorResponse:
    """Mail a new confirmation link to an unconfirmed signature; the previous link stops working."""
    signature = await service.resend_confirmation(session=session, signature_id=signature_id, settings=settings)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Confirmation email for Sender Signature {signature.email} was re-sent.")


@router.post("/senders/{signature_id}/verifyspf", response_model=SenderDetails, responses=ERRORS)
async def verify_spf(signature_id: EntityId, session: Session, settings: AppSettings, dns: Dns) -> SenderDetails:
    """Check that the signature's domain publishes one SPF record with the mechanisms of SPFTextValue."""
    found = await service.verify_spf(session=session, signature_id=signature_id, dns=dns, wanted=settings.spf_text_value)
    return details(found, settings)


@router.post("/senders/{signature_id}/requestnewdkim", response_model=SenderDetails, responses=ERRORS)
async def request_new_dkim(signature_id: EntityId, session: Session, settings: AppSettings) -> SenderDetails:
    """Rotate the DKIM key of the signature's domain (a Domain): the new key shows in DKIMPendingHost and
    DKIMPendingTextValue and signs once DNS publishes it; the current key signs until then."""
    return details(await service.request_new_dkim(session=session, signature_id=signature_id), settings)


@router.delete("/senders/{signature_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_sender(signature_id: EntityId, session: Session) -> ErrorResponse:
    """Delete a sender signature."""
    email = await service.delete_signature(session=session, signature_id=signature_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Signature {email} removed.")
