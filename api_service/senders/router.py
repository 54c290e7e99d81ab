"""`/senders` (account token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import Session, TransactionalRoute
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.models import SenderSignature
from api_service.senders import service
from api_service.servers.deps import AccountAuth
from shared.schemas.base import ErrorResponse
from shared.schemas.senders import SenderCreate, SenderDetails, SenderEdit, SenderList, SenderSummary

router = APIRouter(route_class=TransactionalRoute, tags=["Sender signatures"], dependencies=[AccountAuth])
ERRORS = error_responses(
    invalid="ErrorCodes 504 exists, 520 FromEmail and Name required, 521 field too long, 522 invalid address",
    not_found="ErrorCode 501: no such sender signature",
    account=True,
)


def details(signature: SenderSignature) -> SenderDetails:
    return SenderDetails(
        ID=signature.id,
        Domain=signature.domain,
        EmailAddress=signature.email,
        ReplyToEmailAddress=signature.reply_to_email,
        Name=signature.name,
        Confirmed=signature.confirmed,
        ConfirmationPersonalNote=signature.confirmation_personal_note,
        ReturnPathDomain=signature.return_path_domain,
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
async def create_sender(session: Session, data: Annotated[SenderCreate, Body()]) -> SenderDetails:
    """Create a sender signature; it can be used as From at once."""
    return details(await service.create_signature(session=session, data=data))


@router.get("/senders/{signature_id}", response_model=SenderDetails, responses=ERRORS)
async def get_sender(signature_id: EntityId, session: Session) -> SenderDetails:
    """Get a sender signature."""
    return details(await service.get_signature_or_raise(session=session, signature_id=signature_id))


@router.put("/senders/{signature_id}", response_model=SenderDetails, responses=ERRORS)
async def edit_sender(signature_id: EntityId, session: Session, data: Annotated[SenderEdit, Body()]) -> SenderDetails:
    """Edit a sender signature."""
    return details(await service.edit_signature(session=session, signature_id=signature_id, data=data))


@router.delete("/senders/{signature_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_sender(signature_id: EntityId, session: Session) -> ErrorResponse:
    """Delete a sender signature."""
    email = await service.delete_signature(session=session, signature_id=signature_id)
    return ErrorResponse(ErrorCode=0, Message=f"Signature {email} removed.")
