"""Sender signature rules, and their confirmation.

A new signature is unconfirmed and cannot be used as From (unless its domain is a confirmed
Domain): Postgate mails a link to the address, through its own intake and delivery (see
`system_mail`), and following it confirms the signature. The link carries a random token of which
only the SHA-256 is stored; it works once, until `SENDER_CONFIRMATION_HOURS` have passed, and a
resend replaces it. With `SENDER_AUTO_CONFIRM` (what `make run` sets) a signature is confirmed at
creation and nothing is mailed: the operator with the account token is trusted.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.domains import service as domains
from api_service.domains import spf
from api_service.domains.dns import DnsLookup
from api_service.errors import NotFound, PostmarkError
from api_service.mail.addresses import Mailbox, domain_of, normalise_email
from api_service.models import Domain, SenderSignature
from api_service.senders import repository, system_mail
from shared.constants import ErrorCode
from shared.schemas.senders import SenderCreate, SenderEdit

CONFIRMATION_PATH = "/confirm/sender/"
CONFIRMATION_TAG = "sender-confirmation"


class InvalidConfirmationLink(Exception):
    """The link's token is unknown, used already, replaced by a newer one, or expired."""


@dataclass(frozen=True, slots=True)
class SignatureView:
    """A signature with the Domain of its domain, if any (the DKIM fields are that domain's)."""

    signature: SenderSignature
    domain: Domain | None


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


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def view(*, session: AsyncSession, signature: SenderSignature) -> SignatureView:
    return SignatureView(signature=signature, domain=await domains.get_domain_by_name(session=session, name=signature.domain))


async def create_signature(*, session: AsyncSession, data: SenderCreate, settings: Settings) -> SignatureView:
    """A new signature: confirmed at once with SENDER_AUTO_CONFIRM, else unconfirmed with a confirmation link mailed to it."""
    if not (data.FromEmail or "").strip() or not (data.Name or "").strip():
        raise PostmarkError(ErrorCode.FROM_EMAIL_REQUIRED, "The FromEmail and Name fields are required.")
    email = normalise_email(_check_text(data.FromEmail, "FromEmail", 255))
    if email is None:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_OR_DOMAIN, f"'{data.FromEmail}' is not a valid email address.")
    if await repository.get_signature_by_email(session=session, email=email) is not None:
        raise PostmarkError(ErrorCode.SIGNATURE_EXISTS, "This signature already exists.")
    now = datetime.now(UTC)
    signature = SenderSignature(
        email=email.lower(),
        domain=domain_of(email),
        name=_check_text(data.Name, "Name", 255),
        reply_to_email=_reply_to(data.ReplyToEmail),
        return_path_domain=_check_text(data.ReturnPathDomain, "ReturnPathDomain", 255).lower(),
        confirmation_personal_note=_check_text(data.ConfirmationPersonalNote, "ConfirmationPersonalNote", 400),
        confirmed=settings.sender_auto_confirm,
        confirmed_at=now if settings.sender_auto_confirm else None,
        spf_verified=False,
    )
    await repository.add_signature(session=session, signature=signature)
    if not signature.confirmed:
        await _mail_confirmation(session=session, signature=signature, settings=settings, now=now)
    return await view(session=session, signature=signature)


def confirmation_mail(signature: SenderSignature, *, link: str, hours: float) -> system_mail.SystemMail:
    note = signature.confirmation_personal_note
    text = (
        f"Hello {signature.name},\n\n"
        f"Someone with the account token of the Postgate mail service asked to send email as {signature.email}.\n"
        + (f"\nTheir note: {note}\n" if note else "")
        + f"\nIf that is you or your team, confirm the address here (the link works for {hours:g} hours):\n\n{link}\n\n"
        "If you did not expect this, ignore this message: nothing is sent from this address until it is confirmed.\n"
    )
    quoted = f"<p>Their note: {html.escape(note)}</p>" if note else ""
    page = (
        f"<p>Hello {html.escape(signature.name)},</p>"
        f"<p>Someone with the account token of the Postgate mail service asked to send email as "
        f"<strong>{html.escape(signature.email)}</strong>.</p>{quoted}"
        f'<p>If that is you or your team, <a href="{html.escape(link)}">confirm the address</a> '
        f"(the link works for {hours:g} hours).</p>"
        "<p>If you did not expect this, ignore this message: nothing is sent from this address until it is confirmed.</p>"
    )
    return system_mail.SystemMail(
        to=Mailbox(name=signature.name, email=signature.email),
        subject=f"Confirm {signature.email} as a sender",
        text=text,
        html=page,
        tag=CONFIRMATION_TAG,
    )


async def _mail_confirmation(*, session: AsyncSession, signature: SenderSignature, settings: Settings, now: datetime) -> None:
    """A new link (the previous one stops working) mailed to the signature's address."""
    token = secrets.token_urlsafe(32)
    signature.confirmation_token_sha256 = token_digest(token)
    signature.confirmation_expires_at = now + timedelta(hours=settings.sender_confirmation_hours)
    await session.flush()
    link = f"{settings.public_base_url}{CONFIRMATION_PATH}{token}"
    await system_mail.send(
        session=session, settings=settings, mail=confirmation_mail(signature, link=link, hours=settings.sender_confirmation_hours)
    )


async def resend_confirmation(*, session: AsyncSession, signature_id: int, settings: Settings) -> SenderSignature:
    signature = await get_signature_or_raise(session=session, signature_id=signature_id, for_update=True)
    if signature.confirmed:
        raise PostmarkError(ErrorCode.SIGNATURE_ALREADY_CONFIRMED, f"The sender signature {signature.email} is already confirmed.")
    await _mail_confirmation(session=session, signature=signature, settings=settings, now=datetime.now(UTC))
    return signature


async def signature_for_link(*, session: AsyncSession, token: str, for_update: bool = False) -> SenderSignature:
    """The unconfirmed signature a confirmation link is for; raises InvalidConfirmationLink."""
    if not token or len(token) > 200:
        raise InvalidConfirmationLink
    signature = await repository.get_signature_by_token(session=session, digest=token_digest(token), for_update=for_update)
    expires = signature.confirmation_expires_at if signature is not None else None
    if signature is None or signature.confirmed or expires is None or expires <= datetime.now(UTC):
        raise InvalidConfirmationLink
    return signature


async def confirm(*, session: AsyncSession, token: str) -> SenderSignature:
    """Follow a confirmation link: the signature may send from now on; the link stops working."""
    signature = await signature_for_link(session=session, token=token, for_update=True)
    signature.confirmed, signature.confirmed_at = True, datetime.now(UTC)
    signature.confirmation_token_sha256 = signature.confirmation_expires_at = None
    await session.flush()
    return signature


async def get_signature_or_raise(*, session: AsyncSession, signature_id: int, for_update: bool = False) -> SenderSignature:
    signature = await repository.get_signature(session=session, signature_id=signature_id, for_update=for_update)
    if signature is None:
        raise NotFound(ErrorCode.SIGNATURE_NOT_FOUND, f"Sender signature {signature_id} was not found.")
    return signature


async def get_signature_view(*, session: AsyncSession, signature_id: int) -> SignatureView:
    return await view(session=session, signature=await get_signature_or_raise(session=session, signature_id=signature_id))


async def edit_signature(*, session: AsyncSession, signature_id: int, data: SenderEdit) -> SignatureView:
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
    return await view(session=session, signature=signature)


async def verify_spf(*, session: AsyncSession, signature_id: int, dns: DnsLookup, wanted: str) -> SignatureView:
    """SPFVerified: the signature's domain publishes one SPF record with the mechanisms of `wanted` (SPF_TEXT_VALUE)."""
    signature = await get_signature_or_raise(session=session, signature_id=signature_id)
    signature.spf_verified = spf.covers(await dns.txt(signature.domain), wanted)
    await session.flush()
    return await view(session=session, signature=signature)


async def request_new_dkim(*, session: AsyncSession, signature_id: int) -> SignatureView:
    """A new DKIM key for the signature's domain: in Postgate, keys belong to Domains (see `domains.rotate_dkim`)."""
    signature = await get_signature_or_raise(session=session, signature_id=signature_id)
    domain = await domains.rotate_dkim_for(session=session, name=signature.domain)
    if domain is None:
        raise PostmarkError(
            ErrorCode.DOMAIN_NOT_FOUND,
            f"{signature.domain} has no DKIM key: Postgate signs with the keys of Domains. Add it with POST /domains to get one.",
        )
    return SignatureView(signature=signature, domain=domain)


async def delete_signature(*, session: AsyncSession, signature_id: int) -> str:
    signature = await get_signature_or_raise(session=session, signature_id=signature_id)
    email = signature.email
    await repository.delete_signature(session=session, signature=signature)
    return email


async def list_signatures(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[SenderSignature]]:
    return await repository.list_signatures(session=session, count=count, offset=offset)
