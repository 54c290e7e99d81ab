"""Postmark's inbound webhook payload: the JSON POSTed to a server's InboundHookUrl for each received message.

Field names, types and forms follow Postmark's documented example and the official clients
(postmark.js `InboundWebhook`, `InboundMessageDetails`). `MessageID` is the id the receiving
service gives the message, not the sender's Message-ID header (that one stays in `Headers`).
`RawEmail` is present only when the stream has raw email enabled: serialize with
`model_dump(exclude_none=True)` so it is omitted otherwise (no other field is ever None).
"""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class InboundAddress(WireResponse):
    """One address of From, To, Cc or Bcc."""

    Email: str = Field(description="The address as written, plus part included: 'support+ticket42@example.com'")
    Name: str = Field(description="The display name, decoded; empty when none")
    MailboxHash: str = Field(description="The part after the first '+' of the local part; empty when none")


class InboundHeader(WireResponse):
    """A header of the message, unfolded, encoded words decoded."""

    Name: str
    Value: str


class InboundAttachment(WireResponse):
    """An attached or inline part (inline images carry their ContentID)."""

    Name: str = Field(description="The file name (RFC 2231 and encoded words decoded); empty when the part names none")
    Content: str = Field(description="The decoded bytes of the part, base64-encoded")
    ContentType: str = Field(description="The MIME type, e.g. 'application/pdf'")
    ContentLength: int = Field(description="The length of the decoded bytes")
    ContentID: str = Field(description="The Content-ID without angle brackets; empty when none")


class InboundMessage(WireResponse):
    """A received message as Postmark's inbound webhook delivers it."""

    From: str = Field(description="The sender's address")
    FromName: str = Field(description="The sender's display name")
    FromFull: InboundAddress
    To: str = Field(description="The To addresses, rendered '\"Name\" <email>' (or the bare email) and joined with ', '")
    ToFull: list[InboundAddress]
    Cc: str = Field(description="The Cc addresses, rendered as To")
    CcFull: list[InboundAddress]
    Bcc: str = Field(description="The original recipient when neither To nor Cc names it, rendered as To")
    BccFull: list[InboundAddress]
    OriginalRecipient: str = Field(description="The envelope recipient the message was delivered to")
    ReplyTo: str = Field(description="The Reply-To addresses, rendered as To")
    Subject: str
    MessageID: str = Field(description="The id given to the message on receipt (not its Message-ID header)")
    MessageStream: str
    MailboxHash: str = Field(description="The plus part of the original recipient")
    Date: str = Field(description="The Date header as the sender wrote it (RFC 5322); empty when missing")
    TextBody: str
    HtmlBody: str
    StrippedTextReply: str = Field(description="TextBody without the quoted message it replies to")
    Tag: str
    Headers: list[InboundHeader] = Field(
        description="Every header in order, except From, To, Cc, Bcc, Reply-To, Subject, Date, Content-Type and Content-Transfer-Encoding"
    )
    Attachments: list[InboundAttachment]
    RawEmail: str | None = Field(default=None, description="The whole message; only when raw email is enabled")


# --- the Messages API and the inbound rules -------------------------------------------------------


class InboundAttachmentInfo(WireResponse):
    """An attachment as the Messages API lists it: never its content."""

    Name: str
    ContentType: str
    ContentLength: int
    ContentID: str


class InboundMessageSummary(WireResponse):
    """A received message in `GET /messages/inbound`."""

    From: str
    FromName: str
    FromFull: InboundAddress
    To: str
    ToFull: list[InboundAddress]
    Cc: str
    CcFull: list[InboundAddress]
    Bcc: str
    BccFull: list[InboundAddress]
    ReplyTo: str
    OriginalRecipient: str
    Subject: str
    Date: str
    MailboxHash: str
    Tag: str
    MessageID: str
    MessageStream: str
    Status: str = Field(description="Queued, Processed, Blocked, Failed or Scheduled (retrying)")
    Attachments: list[InboundAttachmentInfo]


class InboundMessageDetails(InboundMessageSummary):
    """A received message with its bodies and headers (`/messages/inbound/{id}/details`)."""

    TextBody: str
    HtmlBody: str
    StrippedTextReply: str
    Headers: list[InboundHeader]
    BlockedReason: str = Field(description="Why the message was blocked; empty unless Status is Blocked")


class InboundMessageList(WireResponse):
    TotalCount: int
    InboundMessages: list[InboundMessageSummary]


class InboundRuleCreate(WireModel):
    """A sender to block: an email address or a domain."""

    Rule: str | None = Field(default=None, description="'spammer@example.com' or 'example.com'")

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [{"Rule": "spammer@example.com"}]}}


class InboundRule(WireResponse):
    ID: int
    Rule: str


class InboundRuleList(WireResponse):
    TotalCount: int
    InboundRules: list[InboundRule]
