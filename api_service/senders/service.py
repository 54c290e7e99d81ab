"""Sender signature rules. Signatures made with the account token are confirmed at once:
the operator of a self-hosted Postgate is trusted, and there is no confirmation mail to click."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.email.addresses import domain_of, normalise_email
from api_service.errors import NotFound, PostmarkError
from api_service.models import SenderSignature
from api_service.senders import repository
from shared.constants import ErrorCode
from shared.schemas.senders import SenderCreate, SenderEdit


def _check_text(value: str | None, field: str, limit: int) -> str:
    value = (value or "").strip()
    if "\x00" in value or "\r" in value or "\n" in value:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_OR_DOMAIN, f"The value of '{field}' is invalid.")
    if len(value) > limit:
        raise PostmarkError(ErrorCode.FIELD_TOO_LONG, f"'{field}' must be at most {limit} characters.")
    return value


def _reply_to(value: str | None) -> str:
    value = _check_text(value, "ReplyToEmail", 255)
    if value and normalise_email(value) is None:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_OR_DOMAIN, f"'{value}' is not a valid ReplyToEmail address.")
    return value


async def create_signature(*, session: AsyncSession, data: SenderCreate) -> SenderSignature:
    if not (data.FromEmail or "").strip() or not (data.Name or "").strip():
        raise PostmarkError(ErrorCode.FROM_EMAIL_REQUIRED, "The FromEmail and Name fields are required.")
    email = normalise_email(_check_text(data.FromEmail, "FromEmail", 255))
    if email is None:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_OR_DOMAIN, f"'{data.FromEmail}' is not a valid email address.")
    if await repository.get_signature_by_email(session=session, email=email) is not None:
        raise PostmarkError(ErrorCode.SIGNATURE_EXISTS, "This signature already exists.")
    signature = SenderSignature(
        email=email.lower(),
        domain=domain_of(email),
        name=_check_text(data.Name, "Name", 255),
        reply_to_email=_reply_to(data.ReplyToEmail),
        return_path_domain=_check_text(data.ReturnPathDomain, "ReturnPathDomain", 255).lower(),
        confirmation_personal_note=_check_text(data.ConfirmationPersonalNote, "ConfirmationPersonalNote", 400),
        confirmed=True,
    )
    return await repository.add_signature(session=session, signature=signature)


async def get_signature_or_raise(*, session: AsyncSession, signature_id: int) -> SenderSignature:
    signature = await repository.get_signature(session=session, signature_id=signature_id)
    if signature is None:
        raise NotFound(ErrorCode.SIGNATURE_NOT_FOUND, f"Sender signature {signature_id} was not found.")
    return signature


async def edit_signature(*, session: AsyncSession, signature_id: int, data: SenderEdit) -> SenderSignature:
    signature = await get_signature_or_raise(session=session, signature_id=signature_id)
    given = data.model_dump(exclude_unset=True, exclude_none=True)
    if "Name" in given:
        name = _check_text(data.Name, "Name", 255)
        if not name:
            raise PostmarkError(ErrorCode.FROM_EMAIL_REQUIRED, "The Name field is required.")
        signature.name = name
    if "ReplyToEmail" in given:
        signature.reply_to_email = _reply_to(data.ReplyToEmail)
    if "ReturnPathDomain" in given:
        signature.return_path_domain = _check_text(data.ReturnPathDomain, "ReturnPathDomain", 255).lower()
    if "ConfirmationPersonalNote" in given:
        signature.confirmation_personal_note = _check_text(data.ConfirmationPersonalNote, "ConfirmationPersonalNote", 400)
    await session.flush()
    return signature


async def delete_signature(*, session: AsyncSession, signature_id: int) -> str:
    signature = await get_signature_or_raise(session=session, signature_id=signature_id)
    email = signature.email
    await repository.delete_signature(session=session, signature=signature)
    return email


async def list_signatures(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[SenderSignature]]:
    return await repository.list_signatures(session=session, count=count, offset=offset)
