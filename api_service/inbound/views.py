"""A received message as `GET /messages/inbound…` shows it, built from the parser's stored payload.

The API router and the console's inbound pages both show these documents, so they are built here,
below both, rather than in either one's routes.
"""

from __future__ import annotations

from typing import Any

from api_service.models import InboundMessage
from shared.schemas.inbound import InboundAttachmentInfo, InboundMessageDetails, InboundMessageSummary

SUMMARY_FIELDS = tuple(InboundMessageSummary.model_fields)
DETAIL_FIELDS = ("TextBody", "HtmlBody", "StrippedTextReply", "Headers")


def summary_fields(message: InboundMessage) -> dict[str, Any]:
    fields = {name: message.details[name] for name in SUMMARY_FIELDS if name in message.details}
    fields["Attachments"] = [InboundAttachmentInfo.model_validate(a) for a in message.details.get("Attachments", [])]
    fields["Status"] = message.status
    return fields


def details_of(message: InboundMessage) -> InboundMessageDetails:
    """The message with its bodies, the reply without its quote, headers and why it was blocked."""
    bodies = {name: message.details.get(name, "") for name in DETAIL_FIELDS}
    return InboundMessageDetails(**summary_fields(message), **bodies, BlockedReason=message.blocked_reason)
