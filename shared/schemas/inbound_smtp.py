"""The internal hop for inbound mail: the gateway's MX listener asks which recipients to accept and
hands each received message to the API (account token)."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse

INBOUND_RECIPIENT_PATH = "/internal/inbound/recipients"
INBOUND_MESSAGE_PATH = "/internal/inbound/messages"


class InboundRecipientQuery(WireModel):
    """May the listener accept mail for this address (RCPT TO)?"""

    Address: str


class InboundRecipientVerdict(WireResponse):
    Accepted: bool = Field(description="A server receives mail at this address")
    DomainAccepted: bool = Field(description="The domain is an inbound domain at all; false: refuse every address on it")


class InboundDelivery(WireModel):
    """One message received for inbound addresses: the envelope and the raw bytes (base64)."""

    MailFrom: str = Field(description="The envelope sender (MAIL FROM); empty for a bounce")
    RcptTo: list[str] = Field(description="The accepted inbound recipients")
    RawMessage: str = Field(description="The message as received, trace header added, base64-encoded, CRLF line endings")


class InboundDeliveryResult(WireResponse):
    """Stored (committed): one inbound message per server the recipients belong to."""

    MessageIDs: list[str]
