"""The Bulk API's shapes: `POST /email/bulk`, `GET /email/bulk/{id}`, `GET /email/bulk`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse
from shared.schemas.email import Attachment, MessageHeader
from shared.schemas.templates import MAX_ID


class BulkMessage(WireModel):
    """One recipient entry: who it goes to and what is theirs alone."""

    To: str | None = Field(default=None, description="Comma-separated recipients, at most 50")
    Cc: str | None = Field(default=None, description="Comma-separated, at most 50")
    Bcc: str | None = Field(default=None, description="Comma-separated, at most 50")
    TemplateModel: dict[str, Any] | None = Field(default=None, description="Fills the shared content's or the template's `{{ … }}`")
    Metadata: dict[str, Any] | None = Field(default=None, description="Merged over the request's Metadata (these keys win)")
    Headers: list[MessageHeader] | None = Field(default=None, description="Merged over the request's Headers (a header named here wins)")


BULK_EXAMPLE: dict[str, Any] = {
    "From": "news@example.com",
    "Subject": "What's new for {{ FirstName }}",
    "HtmlBody": '<p>Hi {{ FirstName }}, here is what\'s new.</p><p><a href="{{{ pm:unsubscribe }}}">Unsubscribe</a></p>',
    "TextBody": "Hi {{ FirstName }}, here is what's new.\n\nUnsubscribe: {{{ pm:unsubscribe }}}",
    "MessageStream": "broadcast",
    "Tag": "newsletter",
    "Messages": [
        {"To": "ann@example.net", "TemplateModel": {"FirstName": "Ann"}},
        {"To": "bob@example.net", "TemplateModel": {"FirstName": "Bob"}, "Metadata": {"segment": "b"}},
    ],
}


class BulkEmailRequest(WireModel):
    """One broadcast to many recipients: the content once (or a stored template), then one entry per recipient."""

    From: str | None = Field(default=None, description="Sender signature or address on a domain; ≤ 255 chars")
    ReplyTo: str | None = None
    Subject: str | None = Field(default=None, description="May hold `{{ … }}`, filled from each entry's TemplateModel")
    HtmlBody: str | None = Field(default=None, description="As Subject; HtmlBody or TextBody unless a template is named")
    TextBody: str | None = Field(default=None, description="As Subject")
    TemplateId: int | None = Field(default=None, ge=0, le=MAX_ID, description="A stored template instead of the content above")
    TemplateAlias: str | None = Field(default=None, description="A stored template, by alias")
    InlineCss: bool | None = Field(default=None, description="Inline the template's `<style>` rules (default true)")
    Tag: str | None = Field(default=None, description="≤ 1000 chars")
    Metadata: dict[str, Any] | None = Field(default=None, description="Every message's; an entry's own keys win")
    MessageStream: str | None = Field(default=None, description="A Broadcasts stream; defaults to `broadcast`")
    TrackOpens: bool | None = None
    TrackLinks: str | None = Field(default=None, description="None | HtmlAndText | HtmlOnly | TextOnly")
    Attachments: list[Attachment] | None = None
    Headers: list[MessageHeader] | None = None
    SendAt: str | None = Field(default=None, description="Beyond Postmark: every message is held until then (as on `/email`)")
    Messages: list[BulkMessage] | None = Field(
        default=None,
        description="One entry per message: at most 10,000 (50 with the test token); the body ≤ 50 MB (1 MB with the test token)",
    )

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [BULK_EXAMPLE]}}


class BulkStatusResponse(WireResponse):
    """A bulk request's progress. Absent values are left out, as in Postmark."""

    Id: str
    SubmittedAt: str
    Status: str = Field(description="Accepted (nothing released yet), Processing or Completed")
    TotalMessages: int
    PercentageCompleted: float = Field(description="Released and failed messages, as a percentage of TotalMessages (0–100)")
    ReleasedCount: int = Field(description="Messages accepted for delivery")
    FailedCount: int = Field(description="Messages refused: every recipient suppressed, a model that does not render, …")
    Subject: str = Field(description="The request's Subject, unrendered (the template's, for a template; empty when none)")


class BulkStatusList(WireResponse):
    """This server's bulk requests, newest first; pass `PaginationKey` back for the next page (absent on the last)."""

    Requests: list[BulkStatusResponse]
    PaginationKey: str | None = None
