"""Postgate's own mail (a signature's confirmation link, a data removal's completion notice).

It goes through the same intake as any message (`email.service.accept`), so it is stored, queued,
delivered, DKIM-signed and shown in the activity like the rest:

- on the `outbound` stream of the server named `SYSTEM_SERVER` ("Postgate system"), made with
  its default streams the first time it is needed; point it at an existing server by its name;
- from `SYSTEM_FROM` (default `postgate@RETURN_PATH_DOMAIN`), a sender signature that is made
  confirmed when missing: the operator chose that address in the configuration.

Both show in the API and the console like any server and signature.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.email import service as email_service
from api_service.email.message import OutgoingMessage
from api_service.errors import PostmarkError
from api_service.mail.addresses import Mailbox, domain_of
from api_service.models import MessageSource, SenderSignature
from api_service.senders import repository
from api_service.servers import service as servers_service
from shared.constants import DEFAULT_MESSAGE_STREAM

SYSTEM_NAME = "Postgate"


@dataclass(frozen=True, slots=True)
class SystemMail:
    to: Mailbox
    subject: str
    text: str
    html: str
    tag: str


async def ensure_system_sender(*, session: AsyncSession, email: str) -> None:
    """`SYSTEM_FROM` as a confirmed sender signature."""
    email = email.lower()
    signature = await repository.get_signature_by_email(session=session, email=email)
    if signature is not None:
        signature.confirmed = True
        signature.confirmation_token_sha256 = signature.confirmation_expires_at = None
        return
    try:
        async with session.begin_nested():
            made = SenderSignature(email=email, domain=domain_of(email), name=SYSTEM_NAME, confirmed=True)
            await repository.add_signature(session=session, signature=made)
    except IntegrityError:  # a concurrent request made it meanwhile
        await ensure_system_sender(session=session, email=email)


async def send(*, session: AsyncSession, settings: Settings, mail: SystemMail) -> uuid.UUID:
    """Accept one message from Postgate itself, in the caller's transaction; raises the PostmarkError
    that refused it (an inactive recipient, say)."""
    server = await servers_service.get_or_create_server(
        session=session, name=settings.system_server, url_guard=settings.webhook_url_guard()
    )
    await ensure_system_sender(session=session, email=settings.system_sender)
    sender = Mailbox(name=SYSTEM_NAME, email=settings.system_sender)
    message = OutgoingMessage(
        source=MessageSource.API,
        sender=sender,
        from_header=f"{SYSTEM_NAME} <{sender.email}>",
        to=[mail.to],
        subject=mail.subject,
        text_body=mail.text,
        html_body=mail.html,
        tag=mail.tag,
        message_stream=DEFAULT_MESSAGE_STREAM,
    )
    [outcome] = await email_service.accept(
        session=session, server=server, items=[message], policy=email_service.Policy.REJECT, message_id_domain=settings.message_id_domain
    )
    if isinstance(outcome, PostmarkError):
        raise outcome
    return outcome.message_id
