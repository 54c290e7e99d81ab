"""What the console's templates are given: small rows and forms built from the services' results.

Pages build these and hand them to Jinja; nothing here reads the database or the request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from starlette.datastructures import FormData

from api_service.bounces.service import BounceRow
from api_service.console.web import checked, field
from api_service.models import Server
from api_service.templates.service import StoredTemplate
from shared.constants import TemplateType
from shared.schemas.templates import (
    TemplateEdit,
    TemplatePushResult,
    TemplateValidateRequest,
    TemplateValidation,
    TemplateValidationError,
    TemplateWrite,
)

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Pager:
    page: int
    total: int
    size: int
    query: dict[str, str]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def url(self, page: int) -> str:
        return "?" + urlencode({**self.query, "page": page})


@dataclass(slots=True)
class SearchQuery(Generic[F]):
    """A list page's search form: the values as typed (shown again), the filters made of them, and
    the message of a value that could not be read (the page shows it with the unfiltered list)."""

    values: dict[str, str]
    filters: F
    error: str | None


@dataclass(frozen=True, slots=True)
class BounceView:
    """What the bounce tables show: the bounce's fields, with `inactive` read from the suppression list."""

    id: int
    type: str
    email: str
    message_id: uuid.UUID | None
    subject: str
    details: str
    bounced_at: datetime
    inactive: bool
    can_activate: bool

    @classmethod
    def of(cls, row: BounceRow) -> BounceView:
        b = row.bounce
        return cls(
            id=b.id,
            type=b.type,
            email=b.email,
            message_id=b.message_id,
            subject=b.subject,
            details=b.details,
            bounced_at=b.bounced_at,
            inactive=row.inactive,
            can_activate=b.can_activate,
        )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    type: str
    at: datetime
    recipient: str
    details: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class DnsRecord:
    label: str
    kind: str
    host: str
    value: str
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class InboundDns:
    """The records that bring a server's inbound mail to the MX listener, and why they may not work yet."""

    records: list[DnsRecord]
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A small table: how a total splits (by platform, by email client), largest first."""

    title: str
    rows: list[tuple[str, int, float]]


# --- the template editor ---------------------------------------------------------------------------

PART_LABELS = (("Subject", "Subject"), ("HtmlBody", "HTML body"), ("TextBody", "Text body"))


@dataclass(slots=True)
class Editor:
    """What the editor form holds; empty strings for what is not filled in."""

    template_type: TemplateType
    name: str = ""
    alias: str = ""
    subject: str = ""
    html_body: str = ""
    text_body: str = ""
    layout: str = ""
    test_model: str = "{}"
    images: bool = False

    @property
    def is_layout(self) -> bool:
        return self.template_type is TemplateType.LAYOUT

    @classmethod
    def from_form(cls, form: FormData, template_type: TemplateType) -> Editor:
        return cls(
            template_type=template_type,
            name=field(form, "name"),
            alias=field(form, "alias"),
            subject=field(form, "subject"),
            html_body=field(form, "html_body"),
            text_body=field(form, "text_body"),
            layout=field(form, "layout"),
            test_model=field(form, "test_model"),
            images=checked(form, "images"),
        )

    @classmethod
    def from_stored(cls, stored: StoredTemplate) -> Editor:
        row = stored.row
        return cls(
            template_type=TemplateType(row.template_type),
            name=row.name,
            alias=row.alias or "",
            subject=row.subject or "",
            html_body=row.html_body or "",
            text_body=row.text_body or "",
            layout=stored.layout_alias or "",
        )

    def to_create(self) -> TemplateWrite:
        """On create the service reads an empty string as a field left out."""
        return TemplateWrite(
            Name=self.name,
            Alias=self.alias,
            TemplateType=self.template_type.value,
            Subject=None if self.is_layout else self.subject,
            HtmlBody=self.html_body,
            TextBody=self.text_body,
            LayoutTemplate=None if self.is_layout else self.layout,
        )

    def to_edit(self) -> TemplateEdit:
        """On edit an empty string clears a field (the service says when it may not be cleared)."""
        return TemplateEdit(
            Name=self.name,
            Alias=self.alias,
            Subject=None if self.is_layout else self.subject,
            HtmlBody=self.html_body,
            TextBody=self.text_body,
            LayoutTemplate=None if self.is_layout else self.layout,
        )

    def to_validate(self, model: dict[str, Any] | None) -> TemplateValidateRequest:
        return TemplateValidateRequest(
            Subject=None if self.is_layout else (self.subject or None),
            HtmlBody=self.html_body or None,
            TextBody=self.text_body or None,
            TestRenderModel=model,
            TemplateType=self.template_type.value,
            LayoutTemplate=None if self.is_layout else (self.layout or None),
        )

    def has_content(self) -> bool:
        return bool(self.html_body or self.text_body or (self.subject and not self.is_layout))


@dataclass(frozen=True, slots=True)
class Check:
    """The templates service's validation of the editor's content (None until there is content)."""

    validation: TemplateValidation | None
    error: str | None = None
    model_error: str | None = None

    def section(self, part: str) -> Any:
        return getattr(self.validation, part) if self.validation is not None else None

    @property
    def html(self) -> str | None:
        section = self.section("HtmlBody")
        return section.RenderedContent if section is not None else None

    @property
    def problems(self) -> list[tuple[str, TemplateValidationError]]:
        """Every error of every part, labelled with its part, for the list beside the editor."""
        return [(label, e) for part, label in PART_LABELS if (section := self.section(part)) for e in section.ValidationErrors]

    @property
    def suggested_json(self) -> str:
        return json.dumps(self.validation.SuggestedTemplateModel if self.validation else {}, indent=2, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class PushPlan:
    """A dry run of a push, shown with the button that performs it."""

    destination: Server
    result: TemplatePushResult
