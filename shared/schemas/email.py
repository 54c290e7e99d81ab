"""The send API's shapes: `/email` and `/email/batch`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class MessageHeader(WireModel):
    """A custom header."""

    refuse_nul = False  # /email answers ErrorCode 300, and a batch per message

    Name: str | None = None
    Value: str | None = None


class Attachment(WireModel):
    """An attachment; `ContentID` (`cid:…`) makes it inline."""

    refuse_nul = False

    Name: str | None = None
    Content: str | None = Field(default=None, description="Base64-encoded content")
    ContentType: str | None = None
    ContentID: str | None = None


class EmailRequest(WireModel):
    """A message to send, as `POST /email` takes it."""

    refuse_nul = False

    From: str | None = Field(default=None, description="Sender signature or address on a domain; `Name <addr>` allowed; ≤ 255 chars")
    To: str | None = Field(default=None, description="Comma-separated recipients, at most 50")
    Cc: str | None = Field(default=None, description="Comma-separated, at most 50")
    Bcc: str | None = Field(default=None, description="Comma-separated, at most 50")
    Subject: str | None = Field(default=None, description="≤ 2000 chars")
    Tag: str | None = Field(default=None, description="≤ 1000 chars")
    HtmlBody: str | None = Field(default=None, description="≤ 5 MB; HtmlBody or TextBody is required")
    TextBody: str | None = Field(default=None, description="≤ 5 MB")
    ReplyTo: str | None = None
    Headers: list[MessageHeader] | None = None
    TrackOpens: bool | None = None
    TrackLinks: str | None = Field(default=None, description="None | HtmlAndText | HtmlOnly | TextOnly")
    Metadata: dict[str, Any] | None = Field(default=None, description="≤ 10 keys; key ≤ 20, value ≤ 80 chars")
    Attachments: list[Attachment] | None = None
    MessageStream: str | None = Field(default=None, description="Defaults to `outbound`")
    SendAt: str | None = Field(
        default=None,
        description="Beyond Postmark: ISO 8601 with an offset (`2030-01-02T09:00:00+01:00`); the message is held until then "
        "(at most 30 days ahead; a time already past sends at once)",
    )

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "From": "Sender <sender@example.com>",
                    "To": "receiver@example.com",
                    "Subject": "Hello from Postgate",
                    "TextBody": "Hello!",
                    "HtmlBody": "<p>Hello!</p>",
                    "Tag": "welcome",
                    "Metadata": {"customer": "42"},
                    "MessageStream": "outbound",
                }
            ]
        }
    }


class InactiveRecipient(WireResponse):
    """Beyond Postmark: one recipient a 406 names, readable without parsing `Message`."""

    Email: str
    Reason: str = Field(description="HardBounce, SpamComplaint, ManualSuppression or Unsubscribe")
    Since: str = Field(description="When the address was suppressed (ISO 8601, UTC)")


class SendResult(WireResponse):
    """The answer for one message: `ErrorCode` 0 on success."""

    ErrorCode: int
    Message: str
    To: str | None = None
    Cc: str | None = None
    Bcc: str | None = None
    SubmittedAt: str | None = None
    MessageID: str | None = None
    SendAt: str | None = Field(default=None, description="Beyond Postmark: when a scheduled message will be released")
    InactiveRecipients: list[InactiveRecipient] | None = Field(
        default=None, description="Beyond Postmark, with ErrorCode 406: each inactive recipient, why, and since when"
    )
