"""The steps a message goes through between its entry point and the wire.

    entry point ─ adapter (from_json / from_mime) ─▶ OutgoingMessage
      ─▶ render (accept time: templates)  ─▶ rules (service.accept)  ─▶ compose (MIME, stored)
      ─▶ queue ─▶ delivery worker ─▶ personalise (per recipient: tracking, unsubscribe) ─▶ DKIM ─▶ SMTP

`render` is the seam templates plug into (today it changes nothing); `personalise` writes each
recipient's open pixel, tracked links and unsubscribe link and headers (see `tracking.copies`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from api_service.email.addresses import Mailbox, domain_of
from api_service.email.from_mime import rewrite_headers
from api_service.email.message import OutgoingMessage
from api_service.email.mime import MimeInput, build_mime
from api_service.errors import PostmarkError
from api_service.models import Message
from api_service.tracking import copies
from api_service.tracking.copies import Personalisation
from api_service.tracking.rewrite import personalise_mime
from shared.constants import ErrorCode

log = logging.getLogger("postgate.delivery")

__all__ = ["Personalisation", "compose", "per_recipient", "personalise", "render", "tracked_links"]


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


def _copy_settings(message: Message) -> copies.CopySettings:
    return copies.CopySettings(
        message_id=message.id, track_opens=message.track_opens, track_links=message.track_links, list_unsubscribe=message.list_unsubscribe
    )


def per_recipient(message: Message) -> bool:
    """Does each recipient of this message get a copy of its own?"""
    return copies.per_recipient(_copy_settings(message))


def tracked_links(mime: bytes, track_links: str) -> int:
    """Accept time: how many links each copy will have tracked (for the stats)."""
    return copies.tracked_link_count(mime, track_links)


def personalise(mime: bytes, *, message: Message, recipient: str, context: Personalisation | None = None) -> bytes:
    """Delivery time, per recipient, before DKIM signing: what only this recipient's copy holds
    (an open-tracking pixel, tracked links, an unsubscribe link and the List-Unsubscribe headers)."""
    if context is None or not per_recipient(message):
        return mime
    try:
        return personalise_mime(mime, copies.plan_for(_copy_settings(message), recipient=recipient, context=context))
    except Exception:  # as with DKIM: a copy that cannot be personalised is still delivered, as stored
        log.exception("personalising %s for one recipient failed; delivering it as stored", message.id)
        return mime
