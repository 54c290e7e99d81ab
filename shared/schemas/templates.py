"""The Templates API (`/templates`) and sending with a template (`/email/withTemplate`, `/email/batchWithTemplates`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse
from shared.schemas.email import EmailRequest

MAX_ID = 2**63 - 1

RECEIPT_LAYOUT: dict[str, Any] = {
    "Name": "Receipt layout",
    "Alias": "receipt-layout",
    "TemplateType": "Layout",
    "HtmlBody": (
        "<html><head><style>.brand { color: #e2571e; font-weight: bold; } td { padding: 4px 8px; }</style></head>"
        '<body><p class="brand">{{ company }}</p>{{{ @content }}}<p>Questions? Reply to this email.</p></body></html>'
    ),
    "TextBody": "{{ company }}\n\n{{{ @content }}}\n\nQuestions? Reply to this email.",
}
RECEIPT: dict[str, Any] = {
    "Name": "Receipt",
    "Alias": "receipt",
    "LayoutTemplate": "receipt-layout",
    "Subject": "Your receipt for order {{ order_id }}",
    "HtmlBody": (
        "<p>Hi {{ name }},</p><table>{{#each items}}<tr><td>{{ description }}</td><td>{{ amount }}</td></tr>{{/each}}</table>"
        "<p>Total: {{ total }}</p>"
    ),
    "TextBody": "Hi {{ name }},\n{{#each items}}- {{ description }}: {{ amount }}\n{{/each}}Total: {{ total }}",
}
RECEIPT_MODEL: dict[str, Any] = {
    "company": "Acme",
    "order_id": "1234",
    "name": "Ann",
    "items": [{"description": "Pen", "amount": "$3.00"}, {"description": "Ink <blue>", "amount": "$7.00"}],
    "total": "$10.00",
}


class TemplateWrite(WireModel):
    """A template's content and settings, as `POST /templates` (create) and `PUT /templates/{idOrAlias}` (edit) take them.

    On edit every field is optional and a `null` field is left as it is; `""` clears `Alias` (Standard templates),
    `LayoutTemplate`, and one of the two bodies.
    """

    Name: str | None = Field(default=None, description="Required on create; ≤ 255 chars")
    Subject: str | None = Field(default=None, description="Required for Standard templates, not allowed for Layouts")
    HtmlBody: str | None = Field(default=None, description="HtmlBody or TextBody is required; a Layout's holds `{{{ @content }}}` once")
    TextBody: str | None = Field(default=None, description="As HtmlBody, for the plain-text part")
    Alias: str | None = Field(
        default=None,
        description="Unique per server, matched without case: a letter, then letters, digits, `.`, `-`, `_`. A Layout without one gets one",
    )
    TemplateType: str | None = Field(default=None, description="Standard (default) or Layout; fixed at creation")
    LayoutTemplate: str | None = Field(default=None, description="The alias of the Layout a Standard template is shown in")

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [RECEIPT_LAYOUT, RECEIPT]}}


class TemplateEdit(TemplateWrite):
    """Changes to a template: the fields given replace the stored ones."""

    model_config = WireModel.model_config | {
        "json_schema_extra": {"examples": [{"Name": "Receipt (v2)", "Subject": "Receipt for order {{ order_id }}"}]}
    }


class TemplateSummary(WireResponse):
    """A template without its content: the create and edit answer, and a `GET /templates` item."""

    TemplateId: int
    Name: str
    Active: bool = Field(description="False once deleted")
    Alias: str | None
    TemplateType: str
    LayoutTemplate: str | None = Field(description="The alias of the Layout it uses")


class TemplateDetails(TemplateSummary):
    """A template with its content."""

    Subject: str | None
    HtmlBody: str | None
    TextBody: str | None
    AssociatedServerId: int


class TemplateList(WireResponse):
    TotalCount: int
    Templates: list[TemplateSummary]


class TemplateValidateRequest(WireModel):
    """Template content to check and render without saving it (at least one of Subject, HtmlBody, TextBody)."""

    Subject: str | None = None
    HtmlBody: str | None = None
    TextBody: str | None = None
    TestRenderModel: dict[str, Any] | None = Field(default=None, description="Values that override the suggested model's")
    InlineCssForHtmlTestRender: bool | None = Field(
        default=None, description="Inline `<style>` rules into the rendered HTML (default true)"
    )
    TemplateType: str | None = Field(default=None, description="Standard (default) or Layout")
    LayoutTemplate: str | None = Field(default=None, description="Render inside this Layout (alias)")

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "Subject": "Your receipt for order {{ order_id }}",
                    "HtmlBody": RECEIPT["HtmlBody"],
                    "TextBody": RECEIPT["TextBody"],
                    "TestRenderModel": {"name": "Ann"},
                }
            ]
        }
    }


class TemplateValidationError(WireResponse):
    """One problem in one part: Line and CharacterPosition are 1-based (null when the problem has no position)."""

    Message: str
    Line: int | None
    CharacterPosition: int | None


class TemplateContentValidation(WireResponse):
    ContentIsValid: bool
    ValidationErrors: list[TemplateValidationError]
    RenderedContent: str | None = Field(description="The part rendered with the suggested model (null when invalid)")


class TemplateValidation(WireResponse):
    """Each part given: valid or not, where not, and rendered; a part not given is null."""

    AllContentIsValid: bool
    HtmlBody: TemplateContentValidation | None
    TextBody: TemplateContentValidation | None
    Subject: TemplateContentValidation | None
    SuggestedTemplateModel: dict[str, Any] = Field(
        description="The model the template uses, with placeholder values, merged with TestRenderModel"
    )


class TemplatePushRequest(WireModel):
    """Copy the templates that have an alias from one server to another (account token)."""

    SourceServerID: int = Field(ge=1, le=MAX_ID)
    DestinationServerID: int = Field(ge=1, le=MAX_ID)
    PerformChanges: bool = Field(description="false: only report what would change")

    model_config = WireModel.model_config | {
        "json_schema_extra": {"examples": [{"SourceServerID": 1, "DestinationServerID": 2, "PerformChanges": False}]}
    }


class TemplatePushAction(WireResponse):
    Action: str = Field(description="Create or Edit")
    TemplateId: int | None = Field(description="The destination template; null for a Create that was not performed")
    Alias: str
    Name: str
    TemplateType: str


class TemplatePushResult(WireResponse):
    TotalCount: int
    Templates: list[TemplatePushAction]


class TemplatedEmailRequest(EmailRequest):
    """A message whose Subject, HtmlBody and TextBody come from a stored template filled with `TemplateModel`."""

    TemplateId: int | None = Field(default=None, ge=0, le=MAX_ID, description="The template to use; wins over TemplateAlias")
    TemplateAlias: str | None = Field(default=None, description="The template to use, by alias")
    TemplateModel: dict[str, Any] | None = Field(default=None, description="Required: the values the template is filled with")
    InlineCss: bool | None = Field(default=None, description="Inline the HTML's `<style>` rules (default true)")
    Subject: str | None = Field(default=None, description="Not allowed: the template gives it (ErrorCode 1123)")
    HtmlBody: str | None = Field(default=None, description="Not allowed: the template gives it (ErrorCode 1123)")
    TextBody: str | None = Field(default=None, description="Not allowed: the template gives it (ErrorCode 1123)")

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "From": "Sender <sender@example.com>",
                    "To": "receiver@example.com",
                    "TemplateAlias": "receipt",
                    "TemplateModel": RECEIPT_MODEL,
                    "Tag": "receipt",
                    "Metadata": {"order": "1234"},
                    "MessageStream": "outbound",
                }
            ]
        }
    }


class TemplatedBatchRequest(WireModel):
    """Up to 500 templated messages."""

    refuse_nul = False  # each message answers for itself, as in /email/batch

    Messages: list[TemplatedEmailRequest]

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "Messages": [
                        {"From": "sender@example.com", "To": "ann@example.net", "TemplateAlias": "receipt", "TemplateModel": RECEIPT_MODEL},
                        {
                            "From": "sender@example.com",
                            "To": "bob@example.net",
                            "TemplateAlias": "receipt",
                            "TemplateModel": RECEIPT_MODEL | {"name": "Bob"},
                        },
                    ]
                }
            ]
        }
    }
