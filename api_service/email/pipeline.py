"""The steps a message goes through between its entry point and the wire.

    entry point ─ adapter (from_json / from_mime) ─▶ OutgoingMessage
      ─▶ render (accept time: templates)  ─▶ rules (service.accept)  ─▶ compose (MIME, stored)
      ─▶ queue ─▶ delivery worker ─▶ personalise (per recipient: tracking, unsubscribe) ─▶ DKIM ─▶ SMTP

`render` and `personalise` are the seams later features plug into; today they change nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from api_service.email.addresses import Mailbox, domain_of
from api_service.email.from_mime import rewrite_headers
from api_service.email.message import OutgoingMessage
from api_service.email.mime import MimeInput, build_mime
from api_service.errors import PostmarkError
from api_service.models import Message
from shared.constants import ErrorCode


def render(message: OutgoingMessage) -> OutgoingMessage:
    """Accept time, before the rules: fill a templated message's subject and bodies."""
    return message


def message_id_header(message_id: uuid.UUID, sender: Mailbox | None, domain: str) -> str:
    if not domain:
        domain = domain_of(sender.email) if sender is not None else "postgate.invalid"
    return f"<{message_id}@{domain}>"


def compose(message: OutgoingMessage, *, message_id: uuid.UUID, now: datetime, reply_to: list[Mailbox], message_id_domain: str) -> bytes:
    """Accept time, after the rules: the RFC 5322 message that is stored and delivered.

    An API message is built from its fields; an SMTP message keeps its own bytes, with the
    control headers removed and Postgate's Message-ID unless the client's is to be kept.
    """
    header_id = message.message_id or message_id_header(message_id, message.sender, message_id_domain)
    if message.mime is not None:
        return rewrite_headers(message.mime, message_id=None if message.message_id else header_id)
    if message.sender is None:  # the JSON adapter refuses a message without From
        raise PostmarkError(ErrorCode.INVALID_EMAIL_REQUEST, "The 'From' address is required.")
    try:
        return build_mime(
            MimeInput(
                message_id=header_id,
                date=now,
                sender=message.sender,
                to=message.to,
                cc=message.cc,
                reply_to=reply_to,
                subject=message.subject,
                text_body=message.text_body,
                html_body=message.html_body,
                headers=message.headers,
                attachments=message.attachments,
            )
        )
    except (ValueError, TypeError) as exc:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_REQUEST, f"The message could not be built: {exc}.") from None


def personalise(mime: bytes, *, message: Message, recipient: str) -> bytes:
    """Delivery time, per recipient, before DKIM signing: what only this recipient's copy holds
    (an open-tracking pixel, tracked links, an unsubscribe link)."""
    return mime
