"""Template rules: the Templates API (create, edit, delete, list, validate, push) and rendering at accept time.

A template is checked whole whenever it is saved (`check_draft`), so a stored template always parses and a Layout
always holds `{{{ @content }}}` exactly once per body. Rendering reads the layout at send time: editing a layout
changes every template that uses it from the next message on.

Where Postmark's own sentence is known (1101, 1120 for a missing TemplateModel, 1123 on a send) it is used word for
word; the other messages are Postgate's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound, PostmarkError
from api_service.models import Template
from api_service.templates import mustachio, repository
from api_service.templates.budget import Budget, run_budgeted
from api_service.templates.reference import TemplateReference
from api_service.templates.rendering import RenderedTemplate, TemplateParts, render_template
from api_service.templates.repository import StoredTemplate as StoredTemplate  # the console names it in its pages
from api_service.templates.validation import ValidateStep, validate_parts
from api_service.templates.validation import placeholder_problem as placeholder_problem  # tests and callers name it here
from shared.constants import (
    MAX_BODY_BYTES,
    MAX_SUBJECT_CHARS,
    MAX_TEMPLATE_ALIAS_CHARS,
    MAX_TEMPLATE_NAME_CHARS,
    MAX_TEMPLATES_PER_SERVER,
    ErrorCode,
    TemplateType,
)
from shared.schemas.templates import (
    MAX_ID,
    TemplateEdit,
    TemplatePushAction,
    TemplatePushRequest,
    TemplatePushResult,
    TemplateValidateRequest,
    TemplateValidation,
    TemplateWrite,
)

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
PARTS = ("Subject", "HtmlBody", "TextBody")
BODIES = ("HtmlBody", "TextBody")
ALL_TYPES = "all"


# --- errors -------------------------------------------------------------------------------------


def template_not_found(*, template_id: int | None = None, alias: str | None = None) -> PostmarkError:
    """Postmark's 1101 sentence, for a send or a `LayoutTemplate` that names no usable template."""
    if template_id is not None:
        return PostmarkError(ErrorCode.TEMPLATE_NOT_FOUND, "The 'TemplateId' associated with this request is not valid or was not found.")
    return PostmarkError(ErrorCode.TEMPLATE_NOT_FOUND, "The Template's 'Alias' associated with this request is not valid or was not found.")


def _invalid(message: str) -> PostmarkError:
    return PostmarkError(ErrorCode.TEMPLATE_FIELD_INVALID, message)


def _required(message: str) -> PostmarkError:
    return PostmarkError(ErrorCode.TEMPLATE_FIELD_REQUIRED, message)


def _too_large(message: str) -> PostmarkError:
    return PostmarkError(ErrorCode.TEMPLATE_FIELD_TOO_LARGE, message)


def _not_allowed(message: str) -> PostmarkError:
    return PostmarkError(ErrorCode.TEMPLATE_FIELD_NOT_ALLOWED, message)


# --- references: id or alias ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """What a path segment names: all digits is an id (an alias starts with a letter), anything else an alias."""

    template_id: int | None
    alias_key: str | None
    text: str

    @classmethod
    def parse(cls, id_or_alias: str) -> Reference:
        text = id_or_alias.strip()
        if text.isascii() and text.isdigit():
            number = int(text) if len(text) <= len(str(MAX_ID)) else 0  # no BIGINT has more digits: 0 is never an id
            return cls(template_id=number if number <= MAX_ID else 0, alias_key=None, text=text)
        return cls(template_id=None, alias_key=text.lower(), text=text)


def parse_template_type(value: str | None) -> TemplateType:
    if value is None or not value.strip():
        return TemplateType.STANDARD
    matched = next((t for t in TemplateType if t.value.lower() == value.strip().lower()), None)
    if matched is None:
        raise _invalid(f"Invalid 'TemplateType' '{value}': use Standard or Layout.")
    return matched


# --- the whole-template check ------------------------------------------------------------------------


@dataclass(slots=True)
class Draft:
    """A template as it will be stored: after a create, or an edit merged into the stored one."""

    name: str
    alias: str | None
    template_type: TemplateType
    subject: str | None
    html_body: str | None
    text_body: str | None
    layout_alias: str | None

    def part(self, name: str) -> str | None:
        return {"Subject": self.subject, "HtmlBody": self.html_body, "TextBody": self.text_body}[name]


def check_draft(draft: Draft) -> None:
    """Every rule that needs nothing but the template itself; raises the first problem's PostmarkError."""
    fields = {"Name": draft.name, "Alias": draft.alias, "LayoutTemplate": draft.layout_alias} | {p: draft.part(p) for p in PARTS}
    for field, value in fields.items():
        if value is not None and "\x00" in value:
            raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - {field}: NUL characters are not allowed.")
    if not draft.name.strip():
        raise _required("The 'Name' field is required.")
    if len(draft.name) > MAX_TEMPLATE_NAME_CHARS:
        raise _too_large(f"The 'Name' must be at most {MAX_TEMPLATE_NAME_CHARS} characters.")
    if draft.alias is not None:
        if len(draft.alias) > MAX_TEMPLATE_ALIAS_CHARS:
            raise _too_large(f"The 'Alias' must be at most {MAX_TEMPLATE_ALIAS_CHARS} characters.")
        if not ALIAS.fullmatch(draft.alias):
            raise _invalid(
                f"The 'Alias' '{draft.alias}' is not valid: it must start with a letter and hold only letters, digits, '.', '-' and '_'."
            )
    if draft.template_type is TemplateType.LAYOUT:
        if draft.subject is not None:
            raise _not_allowed("A Layout template has no 'Subject': the Standard templates that use it give theirs.")
        if draft.layout_alias is not None:
            raise _not_allowed("A Layout template cannot itself use a 'LayoutTemplate'.")
    elif not draft.subject:
        raise _required("The 'Subject' field is required for a Standard template.")
    if draft.html_body is None and draft.text_body is None:
        raise _required("Provide either a 'TextBody' or an 'HtmlBody' or both.")
    if draft.subject is not None and len(draft.subject) > MAX_SUBJECT_CHARS:
        raise _too_large(f"The 'Subject' must be at most {MAX_SUBJECT_CHARS} characters.")
    for part in BODIES:
        body = draft.part(part)
        if body is not None and len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise _too_large(f"The '{part}' must be at most 5 MB.")
    for part in PARTS:
        source = draft.part(part)
        if source is None:
            continue
        errors = mustachio.validate(source)
        if errors:
            first = errors[0]
            raise _invalid(
                f"The '{part}' is not a valid template: {first.message} (line {first.line}, character {first.character}). "
                "POST /templates/validate lists every problem."
            )
        problem = placeholder_problem(draft.template_type, part, mustachio.content_placeholder_count(source))
        if problem:
            raise PostmarkError(ErrorCode.LAYOUT_PLACEHOLDER, problem)


def _check_draft(draft: Draft, budget: Budget) -> None:
    """`check_draft` as a budgeted step: a large template is parsed (twice: errors, placeholders) in a thread."""
    budget.parse(2 * sum(len(draft.part(p) or "") for p in PARTS))
    check_draft(draft)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:200]
    return slug if slug[:1].isalpha() else f"layout-{slug}".rstrip("-")


# --- reads ---------------------------------------------------------------------------------------------


async def get_template_or_raise(
    *, session: AsyncSession, server_id: int, id_or_alias: str, include_deleted: bool = False
) -> StoredTemplate:
    """By id (a deleted template too, when asked: it shows `Active: false`) or by alias (active templates only)."""
    reference = Reference.parse(id_or_alias)
    found = await repository.get_template(
        session=session,
        server_id=server_id,
        template_id=reference.template_id,
        alias_key=reference.alias_key,
        include_deleted=include_deleted,
    )
    if found is None:
        raise NotFound(ErrorCode.TEMPLATE_NOT_FOUND, f"The template '{reference.text}' was not found.")
    return found


async def list_templates(
    *, session: AsyncSession, server_id: int, count: int, offset: int, template_type: str | None, layout_template: str | None
) -> tuple[int, list[StoredTemplate]]:
    """Active templates in creation order; `template_type` All, Standard or Layout; `layout_template` a Layout's alias."""
    type_filter: str | None = None
    if template_type is not None and template_type.strip().lower() not in ("", ALL_TYPES):
        matched = next((t for t in TemplateType if t.value.lower() == template_type.strip().lower()), None)
        if matched is None:
            raise PostmarkError(ErrorCode.TEMPLATE_QUERY, f"Invalid 'TemplateType' filter '{template_type}': use All, Standard or Layout.")
        type_filter = matched.value
    layout_key = layout_template.strip().lower() if layout_template and layout_template.strip() else None
    return await repository.list_templates(
        session=session, server_id=server_id, template_type=type_filter, layout_key=layout_key, count=count, offset=offset
    )


# --- writes --------------------------------------------------------------------------------------------


async def _layout_for(*, session: AsyncSession, server_id: int, alias: str | None) -> Template | None:
    """The active Layout a Standard template names, or 1101."""
    if alias is None:
        return None
    found = await repository.get_template(session=session, server_id=server_id, alias_key=alias.lower())
    if found is None or found.row.template_type != TemplateType.LAYOUT:
        raise PostmarkError(ErrorCode.TEMPLATE_NOT_FOUND, f"The 'LayoutTemplate' '{alias}' is not the alias of a Layout on this server.")
    return found.row


async def _check_alias_free(*, session: AsyncSession, server_id: int, alias: str | None, own_id: int | None) -> None:
    if alias is None:
        return
    found = await repository.get_template(session=session, server_id=server_id, alias_key=alias.lower())
    if found is not None and found.row.id != own_id:
        raise _invalid(f"The 'Alias' '{alias}' is already used by template {found.row.id}.")


async def _generated_alias(*, session: AsyncSession, server_id: int, name: str) -> str:
    """A Layout is referred to by alias, so one created without an alias gets one made from its name."""
    base = _slug(name) or "layout"
    for n in range(1, 1000):
        candidate = base if n == 1 else f"{base}-{n}"
        if await repository.get_template(session=session, server_id=server_id, alias_key=candidate.lower()) is None:
            return candidate
    raise _invalid("Could not make an alias for this Layout: give it an 'Alias'.")


def _given(value: str | None) -> str | None:
    """On create, an empty string is the same as leaving the field out."""
    return value if value else None


async def create_template(*, session: AsyncSession, server_id: int, data: TemplateWrite, keep_id: int | None = None) -> StoredTemplate:
    """Create a template. `keep_id` (the importer: a template's id in the account it comes from) is used when no
    template of any server has it; otherwise the template gets the next id, as always."""
    if not data.model_dump(exclude_none=True):
        raise PostmarkError(ErrorCode.TEMPLATE_NO_DATA, "No template data received.")
    template_type = parse_template_type(data.TemplateType)
    draft = Draft(
        name=data.Name or "",
        alias=_given(data.Alias),
        template_type=template_type,
        subject=(data.Subject or None) if template_type is TemplateType.LAYOUT else data.Subject,
        html_body=_given(data.HtmlBody),
        text_body=_given(data.TextBody),
        layout_alias=_given(data.LayoutTemplate),
    )
    await run_budgeted(partial(_check_draft, draft))
    await repository.lock_server(session=session, server_id=server_id)
    if await repository.count_active(session=session, server_id=server_id) >= MAX_TEMPLATES_PER_SERVER:
        raise PostmarkError(
            ErrorCode.TEMPLATE_LIMIT_EXCEEDED, f"A server may have up to {MAX_TEMPLATES_PER_SERVER} templates: delete one to add another."
        )
    await _check_alias_free(session=session, server_id=server_id, alias=draft.alias, own_id=None)
    layout = await _layout_for(session=session, server_id=server_id, alias=draft.layout_alias)
    if draft.alias is None and template_type is TemplateType.LAYOUT:
        draft.alias = await _generated_alias(session=session, server_id=server_id, name=draft.name)
    if keep_id is not None and (not 0 < keep_id <= MAX_ID or await repository.id_taken(session=session, template_id=keep_id)):
        keep_id = None
    row = Template(
        id=keep_id,
        server_id=server_id,
        name=draft.name,
        alias=draft.alias,
        alias_key=draft.alias.lower() if draft.alias else None,
        template_type=template_type,
        subject=draft.subject,
        html_body=draft.html_body,
        text_body=draft.text_body,
        layout_id=layout.id if layout else None,
    )
    await repository.add_template(session=session, template=row)
    if keep_id is not None:
        await repository.advance_id_sequence(session=session)
    return StoredTemplate(row=row, layout_alias=layout.alias if layout else None)


async def reserve_ids(*, session: AsyncSession, through: int) -> None:
    """From now on, generated template ids are above `through` (the importer: ids it will ask `keep_id` for)."""
    await repository.advance_id_sequence(session=session, at_least=min(max(through, 0), MAX_ID - 1))


def _edited(current: str | None, given: str | None) -> str | None:
    """On edit, null keeps the stored value and an empty string clears it."""
    if given is None:
        return current
    return given or None


async def edit_template(*, session: AsyncSession, server_id: int, id_or_alias: str, data: TemplateEdit) -> StoredTemplate:
    if not data.model_dump(exclude_none=True):
        raise PostmarkError(ErrorCode.TEMPLATE_NO_DATA, "No template data received: send at least one field to change.")
    await repository.lock_server(session=session, server_id=server_id)
    stored = await get_template_or_raise(session=session, server_id=server_id, id_or_alias=id_or_alias)
    row = stored.row
    template_type = TemplateType(row.template_type)
    if data.TemplateType is not None and data.TemplateType.strip() and parse_template_type(data.TemplateType) is not template_type:
        raise _not_allowed("The 'TemplateType' of a template cannot be changed after it is created.")
    draft = Draft(
        name=row.name if data.Name is None else data.Name,
        alias=_edited(row.alias, data.Alias),
        template_type=template_type,
        subject=(
            None if template_type is TemplateType.LAYOUT and not data.Subject else (row.subject if data.Subject is None else data.Subject)
        ),
        html_body=_edited(row.html_body, data.HtmlBody),
        text_body=_edited(row.text_body, data.TextBody),
        layout_alias=_edited(stored.layout_alias, data.LayoutTemplate),
    )
    if template_type is TemplateType.LAYOUT and draft.alias is None:
        raise _required("A Layout template needs an 'Alias': the Standard templates that use it refer to it by alias.")
    await run_budgeted(partial(_check_draft, draft))
    await _check_alias_free(session=session, server_id=server_id, alias=draft.alias, own_id=row.id)
    layout = await _layout_for(session=session, server_id=server_id, alias=draft.layout_alias)
    row.name = draft.name
    row.alias = draft.alias
    row.alias_key = draft.alias.lower() if draft.alias else None
    row.subject = draft.subject
    row.html_body = draft.html_body
    row.text_body = draft.text_body
    row.layout_id = layout.id if layout else None
    await session.flush()
    return StoredTemplate(row=row, layout_alias=layout.alias if layout else None)


async def delete_template(*, session: AsyncSession, server_id: int, id_or_alias: str) -> int:
    """Mark the template deleted (it stays readable by id, inactive); a Layout still in use cannot be deleted (1130)."""
    await repository.lock_server(session=session, server_id=server_id)
    stored = await get_template_or_raise(session=session, server_id=server_id, id_or_alias=id_or_alias)
    if stored.row.template_type == TemplateType.LAYOUT:
        users = await repository.count_layout_users(session=session, layout_id=stored.row.id)
        if users:
            raise PostmarkError(
                ErrorCode.LAYOUT_IN_USE,
                f"The layout template cannot be deleted because it has dependent templates ({users}): "
                "change or remove their 'LayoutTemplate' first.",
            )
    await repository.mark_deleted(session=session, template=stored.row, at=datetime.now(UTC))
    return stored.row.id


# --- validate --------------------------------------------------------------------------------------------


async def validate_template(*, session: AsyncSession, server_id: int, data: TemplateValidateRequest) -> TemplateValidation:
    """Check each part given, suggest the model it needs, and render it with that model (TestRenderModel wins).

    The work runs as one budgeted step (`validation.validate_parts`): in a thread when it is more than a little.
    """
    given = {part: getattr(data, part) for part in PARTS if getattr(data, part) is not None}
    if not given:
        raise _required("Provide at least one of 'Subject', 'HtmlBody' or 'TextBody' to validate.")
    template_type = parse_template_type(data.TemplateType)
    layout_alias = data.LayoutTemplate.strip() if data.LayoutTemplate and data.LayoutTemplate.strip() else None
    if template_type is TemplateType.LAYOUT and layout_alias is not None:
        raise _not_allowed("A Layout template cannot itself use a 'LayoutTemplate'.")
    layout_row = await _layout_for(session=session, server_id=server_id, alias=layout_alias)
    step = ValidateStep(
        given=given,
        template_type=template_type,
        layout=TemplateParts(subject=None, html_body=layout_row.html_body, text_body=layout_row.text_body) if layout_row else None,
        test_model=data.TestRenderModel or {},
        inline=data.InlineCssForHtmlTestRender is not False,
    )
    return await run_budgeted(partial(validate_parts, step))


# --- push ---------------------------------------------------------------------------------------------------


def _content(stored: StoredTemplate) -> tuple[str, str | None, str | None, str | None, str | None]:
    row = stored.row
    return (row.name, row.subject, row.html_body, row.text_body, stored.layout_alias.lower() if stored.layout_alias else None)


async def push_templates(*, session: AsyncSession, data: TemplatePushRequest) -> TemplatePushResult:
    """Copy the source server's templates that have an alias to the destination, matched by alias.

    Layouts go first, so a Standard template finds its layout on the destination. Templates already the same there
    are left out. With `PerformChanges: false` nothing is written and the answer says what would be.
    """
    source_id, destination_id = data.SourceServerID, data.DestinationServerID
    exists = {sid: await repository.lock_server(session=session, server_id=sid) for sid in sorted({source_id, destination_id})}
    if not exists[source_id] and not exists[destination_id]:
        raise PostmarkError(ErrorCode.TEMPLATE_PUSH_SERVER_NOT_FOUND, "The source and destination servers were not found.")
    if not exists[destination_id]:
        raise PostmarkError(ErrorCode.TEMPLATE_PUSH_SERVER_NOT_FOUND, "The destination server was not found.")
    if not exists[source_id]:
        raise PostmarkError(ErrorCode.TEMPLATE_PUSH_SERVER_NOT_FOUND, "The source server was not found.")

    sources = [t for t in await repository.active_templates(session=session, server_id=source_id) if t.row.alias_key]
    if not sources:
        raise PostmarkError(ErrorCode.TEMPLATE_NOTHING_TO_PUSH, "There are no templates with an alias on the source server to push.")
    sources.sort(key=lambda t: (t.row.template_type != TemplateType.LAYOUT, t.row.id))
    destination = await repository.active_templates(session=session, server_id=destination_id)
    by_alias = {t.row.alias_key: t for t in destination if t.row.alias_key is not None}

    changes: list[tuple[StoredTemplate, StoredTemplate | None]] = []
    for source in sources:
        target = by_alias.get(source.row.alias_key or "")
        if target is not None and target.row.template_type != source.row.template_type:
            raise PostmarkError(
                ErrorCode.TEMPLATE_TYPE_MISMATCH,
                f"The template types don't match on the source and destination servers for '{source.row.alias}' "
                f"({source.row.template_type} and {target.row.template_type}).",
            )
        if target is None or _content(target) != _content(source):
            changes.append((source, target))
    creates = sum(1 for _, target in changes if target is None)
    if len(destination) + creates > MAX_TEMPLATES_PER_SERVER:
        raise PostmarkError(
            ErrorCode.TEMPLATE_LIMIT_EXCEEDED,
            f"The push would leave the destination server with more than {MAX_TEMPLATES_PER_SERVER} templates.",
        )

    actions: list[TemplatePushAction] = []
    layouts = {key: t.row for key, t in by_alias.items() if t.row.template_type == TemplateType.LAYOUT}
    for source, target in changes:
        template_id = target.row.id if target else None
        if data.PerformChanges:
            layout = layouts.get(source.layout_alias.lower()) if source.layout_alias else None
            row = target.row if target else Template(server_id=destination_id, template_type=source.row.template_type)
            row.name, row.alias, row.alias_key = source.row.name, source.row.alias, source.row.alias_key
            row.subject, row.html_body, row.text_body = source.row.subject, source.row.html_body, source.row.text_body
            row.layout_id = layout.id if layout else None
            if target is None:
                await repository.add_template(session=session, template=row)
            if row.template_type == TemplateType.LAYOUT and row.alias_key:
                layouts[row.alias_key] = row
            template_id = row.id
        actions.append(
            TemplatePushAction(
                Action="Edit" if target else "Create",
                TemplateId=template_id,
                Alias=source.row.alias or "",
                Name=source.row.name,
                TemplateType=source.row.template_type,
            )
        )
    await session.flush()
    return TemplatePushResult(TotalCount=len(actions), Templates=actions)


# --- sending ------------------------------------------------------------------------------------------------


def _render_all(
    references: Sequence[TemplateReference], found: Sequence[repository.SendableTemplate], budget: Budget
) -> list[RenderedTemplate | PostmarkError]:
    by_id = {t.id: t for t in found}
    by_alias = {t.alias_key: t for t in found if t.alias_key is not None}
    results: list[RenderedTemplate | PostmarkError] = []
    for reference in references:
        template = by_id.get(reference.template_id) if reference.template_id is not None else by_alias.get((reference.alias or "").lower())
        if template is None or template.template_type != TemplateType.STANDARD:
            results.append(template_not_found(template_id=reference.template_id, alias=reference.alias))
            continue
        try:
            rendered = render_template(
                template.parts, template.layout, reference.model, inline=reference.inline_css, budget=budget.for_message()
            )
            results.append(rendered)
        except PostmarkError as exc:
            results.append(exc)
    return results


async def render_for_sending(
    *, session: AsyncSession, server_id: int, references: Sequence[TemplateReference]
) -> list[RenderedTemplate | PostmarkError]:
    """Render each templated message of a request; its templates and layouts are read in one round trip.

    The rendering is one budgeted step (`budget.run_budgeted`): on the loop when small, else in a thread, each message
    with its own budget and all of them within one deadline.
    """
    ids = {r.template_id for r in references if r.template_id is not None}
    alias_keys = {r.alias.lower() for r in references if r.template_id is None and r.alias is not None}
    found = await repository.templates_for_sending(session=session, server_id=server_id, ids=ids, alias_keys=alias_keys)
    return await run_budgeted(partial(_render_all, references, found))
