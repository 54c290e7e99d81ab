"""Delivery time, per recipient: the copy only this recipient gets (an open pixel, tracked links,
an unsubscribe link and the List-Unsubscribe headers), written into the stored message before it
is DKIM-signed. The delivery worker calls these; intake only counts the tracked links
(`email.pipeline.tracked_links`)."""

from __future__ import annotations

import logging

from api_service.models import Message
from api_service.tracking import copies
from api_service.tracking.copies import Personalisation
from api_service.tracking.rewrite import personalise_mime

log = logging.getLogger("postgate.delivery")

__all__ = ["Personalisation", "per_recipient", "personalise"]


def _copy_settings(message: Message) -> copies.CopySettings:
    return copies.CopySettings(
        message_id=message.id,
        track_opens=message.track_opens,
        track_links=message.track_links,
        list_unsubscribe=message.list_unsubscribe,
        server_id=message.server_id,
        message_stream=message.message_stream,
    )


def per_recipient(message: Message) -> bool:
    """Does each recipient of this message get a copy of its own?"""
    return copies.per_recipient(_copy_settings(message))


def personalise(mime: bytes, *, message: Message, recipient: str, context: Personalisation | None = None) -> bytes:
    """What only this recipient's copy holds, written into `mime`; `mime` itself when the message's
    copies do not differ (or no context is given)."""
    if context is None or not per_recipient(message):
        return mime
    try:
        return personalise_mime(mime, copies.plan_for(_copy_settings(message), recipient=recipient, context=context))
    except Exception:  # as with DKIM: a copy that cannot be personalised is still delivered, as stored
        log.exception("personalising %s for one recipient failed; delivering it as stored", message.id)
        return mime
