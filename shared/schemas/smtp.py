"""The internal hop from smtp_service to api_service."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.constants import MAX_ENVELOPE_ADDRESS_CHARS, MAX_ENVELOPE_RECIPIENTS
from shared.schemas.base import WireModel, WireResponse

EnvelopeAddress = Annotated[str, Field(max_length=MAX_ENVELOPE_ADDRESS_CHARS)]

SMTP_AUTH_PATH = "/internal/smtp/auth"
SMTP_SUBMIT_PATH = "/internal/smtp/messages"
SMTP_AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class SmtpAuthResponse(WireResponse):
    """Whether a server token may send over SMTP."""

    ServerID: int
    SmtpApiActivated: bool


class SmtpSubmission(WireModel):
    """One message received over SMTP: the envelope and the raw bytes (base64)."""

    MailFrom: str = Field(max_length=MAX_ENVELOPE_ADDRESS_CHARS, description="The envelope sender (MAIL FROM)")
    RcptTo: list[EnvelopeAddress] = Field(max_length=MAX_ENVELOPE_RECIPIENTS, description="Every RCPT TO, Bcc included")
    RawMessage: str = Field(description="The DATA content, base64-encoded, CRLF line endings")


class SmtpSubmissionResult(WireResponse):
    """Stored: the MessageID; `Duplicate` when a retried submission was recognised."""

    MessageID: str
    Duplicate: bool = False
    Accepted: int = Field(default=0, description="Recipients that will be delivered to")
    Refused: int = Field(default=0, description="Recipients turned into SMTPApiError bounces")
