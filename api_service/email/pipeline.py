"""The steps a message goes through between its entry point and the wire.

    entry point ─ adapter (from_json / from_mime) ─▶ OutgoingMessage
      ─▶ render (accept time: templates)  ─▶ rules (service.accept)  ─▶ compose (MIME, stored)
      ─▶ queue ─▶ delivery worker ─▶ personalise (per recipient: tracking, unsubscribe) ─▶ DKIM ─▶ SMTP

`render` fills templated messages (`/email/withTemplate`) from their template, layout and model, so the rules, the
stored message and delivery all see the rendered Subject and bodies. This module holds the intake-time steps; the
delivery-time step, `personalise` (each recipient's open pixel, tracked links and unsubscribe link and headers), is
`tracking.personalise`, called by the delivery worker.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.offload import cpu_bound
from api_service.email.from_mime import rewrite_headers
from api_service.email.message import OutgoingMessage
from api_service.errors import PostmarkError
from api_service.mail.addresses import Mailbox, domain_of
from api_service.mail.mime import MimeInput, build_mime
from api_service.templates import service as templates
from api_service.tracking import copies
from shared.constants import ErrorCode, TrackLinks

__all__ = ["compose", "render", "tracked_links"]


async def render(
    *, session: AsyncSession, server_id: int, items: list[OutgoingMessage | PostmarkError]
) -> list[OutgoingMessage | PostmarkError]:
    """Accept time, before the rules: fill each templated message's Subject and bodies from its template.

    One look-up for all the templates of a request; a message whose template is missing or cannot be rendered
    becomes its error (1101, 1121, 1122), the others go on. Messages without a template are untouched.
    """
    templated = [i for i in items if isinstance(i, OutgoingMessage) and i.template is not None]
    if not templated:
        return items
    results = await templates.render_for_sending(
        session=session, server_id=server_id, references=[m.template for m in templated if m.template is not None]
    )
    outcome = {id(message): result for message, result in zip(templated, results, strict=True)}
    rendered: list[OutgoingMessage | PostmarkError] = []
    for item in items:
        result = outcome.get(id(item))
        if result is None or isinstance(item, PostmarkError):
            rendered.append(item)
        elif isinstance(result, PostmarkError):
            rendered.append(result)
        else:
            item.subject, item.html_body, item.text_body = result.subject, result.html_body, result.text_body
            rendered.append(item)
    return rendered


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


def _count_all(messages: list[tuple[bytes, str]]) -> list[int]:
    return [copies.tracked_link_count(mime, track_links) for mime, track_links in messages]


async def tracked_links(messages: list[tuple[bytes, str]]) -> list[int]:
    """Accept time: how many links each copy of each (stored MIME, TrackLinks) will have tracked (for
    the stats). Reading big bodies for them (one big message or a batch of many) takes a thread, off
    the event loop."""
    size = sum(len(mime) for mime, track_links in messages if track_links != TrackLinks.NONE)
    return await cpu_bound(size, _count_all, messages)
