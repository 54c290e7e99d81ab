"""The internal hop from smtp_service to api_service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from shared.constants import MAX_ENVELOPE_ADDRESS_CHARS, MAX_ENVELOPE_RECIPIENTS, MAX_MESSAGE_BYTES
from shared.schemas.base import WireModel, WireResponse

EnvelopeAddress = Annotated[str, Field(max_length=MAX_ENVELOPE_ADDRESS_CHARS)]

SMTP_AUTH_PATH = "/internal/smtp/auth"
SMTP_SUBMIT_PATH = "/internal/smtp/messages"
SMTP_AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class SmtpAuthResponse(WireResponse):
    """Whether a server token may send over SMTP."""

    ServerID: int
    SmtpApiActivated: bool


SMTP_AUTH_BATCH_PATH = "/internal/smtp/auth/batch"
SMTP_AUTH_BATCH_MAX_TOKENS = 500


class SmtpAuthBatch(WireModel):
    """The server tokens of the AUTH commands that arrived at the same moment."""

    Tokens: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=SMTP_AUTH_BATCH_MAX_TOKENS)


class SmtpAuthVerdict(WireResponse):
    """One token's answer: its server (None: no such token) and whether it may send over SMTP."""

    ServerID: int | None = None
    SmtpApiActivated: bool = False


class SmtpAuthBatchResult(WireResponse):
    """One verdict per token, in order."""

    Verdicts: list[SmtpAuthVerdict]


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


# --- The batched hand-off ------------------------------------------------------------------------
#
# The gateway gathers the messages its connections are submitting at the same moment and hands them
# over in one request, stored by the API in one transaction. The raw messages travel as they are,
# not base64 inside JSON: the body is one line of JSON (the envelopes, and how many bytes each
# message has) and then the messages, back to back.

SMTP_BATCH_PATH = "/internal/smtp/batch"
SMTP_BATCH_CONTENT_TYPE = "application/x-postgate-smtp-batch"
SMTP_BATCH_MAX_MESSAGES = 500
# Room for one message at the gateway's size limit and the envelopes of a full batch.
SMTP_BATCH_MAX_BYTES = MAX_MESSAGE_BYTES + 4 * 1024 * 1024
SMTP_TOKEN_MAX_CHARS = 200


class SmtpBatchEnvelope(WireModel):
    """One message of a batch: whose it is (the server token its connection authenticated with),
    its envelope, and how many bytes of the body after the JSON line are its DATA."""

    Token: str = Field(min_length=1, max_length=SMTP_TOKEN_MAX_CHARS)
    MailFrom: str = Field(max_length=MAX_ENVELOPE_ADDRESS_CHARS)
    RcptTo: list[EnvelopeAddress] = Field(max_length=MAX_ENVELOPE_RECIPIENTS)
    Size: int = Field(ge=0, le=MAX_MESSAGE_BYTES)


class SmtpBatchHeader(WireModel):
    """The JSON line at the start of a batch body."""

    Messages: list[SmtpBatchEnvelope] = Field(min_length=1, max_length=SMTP_BATCH_MAX_MESSAGES)


@dataclass(frozen=True, slots=True)
class SmtpBatchMessage:
    """One message of a batch, read: its envelope and its DATA (CRLF line endings)."""

    envelope: SmtpBatchEnvelope
    raw: bytes


def encode_smtp_batch(messages: list[SmtpBatchMessage]) -> bytes:
    header = SmtpBatchHeader(Messages=[m.envelope for m in messages])
    return b"".join([header.model_dump_json().encode(), b"\n", *(m.raw for m in messages)])


def decode_smtp_batch(body: bytes) -> list[SmtpBatchMessage]:
    """The messages of a batch body; ValueError (pydantic's ValidationError is one) when it is not one."""
    line, newline, rest = body.partition(b"\n")
    if not newline:
        raise ValueError("no JSON line")
    header = SmtpBatchHeader.model_validate_json(line)
    if sum(e.Size for e in header.Messages) != len(rest):
        raise ValueError("the sizes do not add up to the body")
    messages, offset = [], 0
    view = memoryview(rest)
    for envelope in header.Messages:
        messages.append(SmtpBatchMessage(envelope=envelope, raw=bytes(view[offset : offset + envelope.Size])))
        offset += envelope.Size
    return messages


class SmtpBatchOutcome(WireResponse):
    """What became of one message of a batch, in the order sent: the HTTP status it would have had
    on its own, and either its result (200) or Postmark's error (ErrorCode, Message)."""

    Status: int
    Result: SmtpSubmissionResult | None = None
    ErrorCode: int | None = None
    Message: str = ""
    RetryAfter: int = Field(default=0, description="With Status 429: seconds until this token's messages are taken again")


class SmtpBatchResult(WireResponse):
    """One outcome per message, in order; all of them committed before this was sent."""

    Outcomes: list[SmtpBatchOutcome]
