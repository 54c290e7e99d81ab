"""A bulk request's shared content and one of its entries → that entry's `OutgoingMessage`. Pure, no I/O.

Every entry goes through the same JSON adapter as `/email` and `/email/withTemplate` (`from_json`,
`from_templated_json`), so a bulk message obeys exactly the rules of a single send. The shared part is read once
(`read_shared`: its attachments are decoded once, its content is checked to parse), then each entry is laid over it
(`expand`): its `To`/`Cc`/`Bcc`, its `Metadata` and `Headers` over the request's (the entry's keys win), and its
`TemplateModel` filling either the stored template (rendered by `accept`, as `/email/withTemplate`) or the request's
own Subject, HtmlBody and TextBody (rendered here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_service.email.from_json import from_json, from_templated_json
from api_service.email.message import OutgoingMessage
from api_service.email.service import static_problems
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.mail.mime import AttachmentPart
from api_service.templates.budget import Budget
from api_service.templates.mustachio import TemplateSyntaxError, compile_template
from api_service.templates.rendering import TemplateParts, render_template
from shared.constants import DEFAULT_BROADCAST_STREAM, ErrorCode
from shared.schemas.bulk import BulkEmailRequest, BulkMessage
from shared.schemas.email import EmailRequest, MessageHeader
from shared.schemas.templates import TemplatedEmailRequest

# The fields every message of a request shares, copied into each entry's /email-shaped request.
SHARED_FIELDS = ("From", "ReplyTo", "Tag", "MessageStream", "TrackOpens", "TrackLinks", "SendAt")
CONTENT_FIELDS = ("Subject", "HtmlBody", "TextBody")
# A recipient for reading the shared part alone; any valid address does.
PROBE_RECIPIENT = "bulk@example.com"


@dataclass(frozen=True, slots=True)
class Shared:
    """A request's shared part, read and checked once; every entry's message starts from it."""

    fields: dict[str, Any]
    metadata: dict[str, Any]
    headers: list[MessageHeader]
    attachments: list[AttachmentPart]
    template_id: int | None
    template_alias: str | None
    inline_css: bool
    content: TemplateParts | None
    """The request's own Subject and bodies, filled from each entry's model; None when a stored template is named."""
    probe: OutgoingMessage
    """The shared part as a message to a stand-in recipient, for the rules that need the account (stream, sender)."""

    @property
    def templated(self) -> bool:
        return self.content is None


def has_nul(value: Any) -> bool:
    """Does a JSON value hold a NUL character anywhere (PostgreSQL's text and jsonb cannot store one)?"""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


NUL_REFUSED = "The request contains a NUL character, which is not allowed."


def stream_of(request: BulkEmailRequest) -> str:
    """The stream a bulk request sends on: the one named, else the default Broadcasts stream."""
    return (request.MessageStream or DEFAULT_BROADCAST_STREAM).strip().lower() or DEFAULT_BROADCAST_STREAM


def read_shared(request: BulkEmailRequest) -> Shared:
    """Check the shared part (every `/email` field rule, the content or the template reference) and read it once.

    Raises the first problem as PostmarkError: 300 for a field, 411 for an attachment, 1123 for content beside a
    template, 1122 for content that is not a valid template.
    """
    if has_nul(request.model_dump(exclude={"Messages"}, exclude_none=True)):
        raise InvalidEmailRequest(NUL_REFUSED)
    template_id = request.TemplateId or None
    template_alias = (request.TemplateAlias or "").strip() or None
    templated = template_id is not None or template_alias is not None
    given = {name: getattr(request, name) for name in CONTENT_FIELDS if getattr(request, name) is not None}
    if templated and given:
        raise PostmarkError(
            ErrorCode.TEMPLATE_FIELD_NOT_ALLOWED,
            "Neither 'TextBody', 'HtmlBody', or 'Subject' may be specified when using a template for the email.",
        )
    fields = {name: getattr(request, name) for name in SHARED_FIELDS} | {"MessageStream": stream_of(request)}
    # A template fills the bodies at accept time; until then a placeholder body lets the /email rules run.
    bodies = dict(given) if not templated else {"TextBody": "-"}
    probe = EmailRequest.model_construct(
        **fields,
        **bodies,
        To=PROBE_RECIPIENT,
        Metadata=request.Metadata,
        Headers=request.Headers,
        Attachments=request.Attachments,
    )
    message = from_json(probe)
    problems = static_problems(message)  # attachments of a forbidden type (411)
    if problems:
        raise problems[0]
    content = None
    if not templated:
        for name, source in given.items():
            try:
                compile_template(source)
            except TemplateSyntaxError as exc:
                raise PostmarkError(ErrorCode.TEMPLATE_FIELD_INVALID, f"The '{name}' is not a valid template: {exc}") from None
        content = TemplateParts(subject=request.Subject, html_body=request.HtmlBody, text_body=request.TextBody)
        fields |= given
    return Shared(
        fields=fields,
        metadata=dict(request.Metadata or {}),
        headers=list(request.Headers or []),
        attachments=message.attachments,
        template_id=template_id,
        template_alias=template_alias,
        inline_css=request.InlineCss is not False,
        content=content,
        probe=message,
    )


def merged_headers(shared: list[MessageHeader], own: list[MessageHeader] | None) -> list[MessageHeader]:
    """The request's headers, except those the entry names (case-insensitively), then the entry's."""
    if not own:
        return shared
    named = {(h.Name or "").strip().lower() for h in own}
    return [h for h in shared if (h.Name or "").strip().lower() not in named] + list(own)


def expand(shared: Shared, entry: BulkMessage, *, budget: Budget | None = None) -> OutgoingMessage:
    """One entry's message, ready for `accept`; raises PostmarkError when the entry cannot be sent (its count is failed).

    Rendering the request's own content spends `budget` (a fresh `Budget()` by default); OffloadNeeded passes through.
    """
    model = entry.TemplateModel if entry.TemplateModel is not None else {}
    metadata = shared.metadata | (entry.Metadata or {})
    headers = merged_headers(shared.headers, entry.Headers)
    if shared.content is None:
        message = from_templated_json(
            TemplatedEmailRequest.model_construct(
                **shared.fields,
                To=entry.To,
                Cc=entry.Cc,
                Bcc=entry.Bcc,
                Metadata=metadata,
                Headers=headers,
                TemplateId=shared.template_id,
                TemplateAlias=shared.template_alias,
                TemplateModel=model,
                InlineCss=shared.inline_css,
                Subject=None,
                HtmlBody=None,
                TextBody=None,
            )
        )
    else:
        message = from_json(
            EmailRequest.model_construct(**shared.fields, To=entry.To, Cc=entry.Cc, Bcc=entry.Bcc, Metadata=metadata, Headers=headers)
        )
        # Postmark's own content is not CSS-inlined on /email either; only stored templates are (InlineCss).
        rendered = render_template(shared.content, None, model, inline=False, budget=budget)
        message.subject, message.html_body, message.text_body = rendered.subject, rendered.html_body, rendered.text_body
    message.attachments = shared.attachments
    message.attachment_names = [a.name for a in shared.attachments]
    return message


def entry_problem(shared: Shared, entry: BulkMessage) -> PostmarkError | None:
    """Submit time: what is wrong with an entry's own fields (addresses, Metadata, Headers), without rendering it."""
    if has_nul(entry.TemplateModel):
        return InvalidEmailRequest(NUL_REFUSED)
    try:
        from_json(
            EmailRequest.model_construct(
                From=shared.fields["From"],
                To=entry.To,
                Cc=entry.Cc,
                Bcc=entry.Bcc,
                Metadata=shared.metadata | (entry.Metadata or {}),
                Headers=merged_headers(shared.headers, entry.Headers),
                TextBody="-",
            )
        )
    except PostmarkError as exc:
        return exc
    return None
