"""A templated message's Subject, HtmlBody and TextBody from its template, layout and model. Pure, no I/O.

Rendering is strict (Mustachio's own failures, such as `{{#each x}}` over an `x` that is not a list, are errors)
because the REST API reports them at once, as ErrorCode 1122, instead of accepting a message it cannot build.
A message spends one `Budget` (see `budget`) over its subject, bodies and layout; going past it is 1122 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_service.errors import PostmarkError
from api_service.templates.budget import Budget
from api_service.templates.css import inline_css
from api_service.templates.mustachio import TemplateRenderError, TemplateSyntaxError, compile_template, render_in_layout
from shared.constants import MAX_BODY_BYTES, MAX_SUBJECT_CHARS, ErrorCode


@dataclass(frozen=True, slots=True)
class TemplateParts:
    """The three templated fields of a template (a Layout has no subject)."""

    subject: str | None
    html_body: str | None
    text_body: str | None


@dataclass(frozen=True, slots=True)
class RenderedTemplate:
    subject: str
    html_body: str | None
    text_body: str | None


def merge_models(suggested: object, given: object) -> Any:
    """`given` over `suggested`, object by object: what a test model sets wins, what it leaves out keeps its placeholder."""
    if isinstance(suggested, dict) and isinstance(given, dict):
        merged = dict(suggested)
        for key, value in given.items():
            merged[key] = merge_models(suggested.get(key), value) if key in suggested else value
        return merged
    return given


def _render_part(source: str, layout: str | None, model: dict[str, Any], *, html: bool, field: str, budget: Budget) -> str:
    try:
        content = compile_template(source, budget).render(model, html=html, strict=True, budget=budget)
        if layout is not None:
            content = render_in_layout(
                compile_template(layout, budget), content=content, model=model, html=html, strict=True, budget=budget
            )
    except TemplateRenderError as exc:
        raise PostmarkError(
            ErrorCode.TEMPLATE_FIELD_INVALID, f"The '{field}' could not be rendered with this TemplateModel: {exc}"
        ) from None
    except TemplateSyntaxError as exc:  # stored templates are checked when saved; this is a template saved before a rule changed
        raise PostmarkError(ErrorCode.TEMPLATE_FIELD_INVALID, f"The template's '{field}' is not valid: {exc}") from None
    return content


def render_template(
    template: TemplateParts, layout: TemplateParts | None, model: dict[str, Any], *, inline: bool = True, budget: Budget | None = None
) -> RenderedTemplate:
    """Fill a Standard template (inside its layout, when it has one) from `model`; raises PostmarkError (1121, 1122).

    `{{ x }}` is HTML-encoded in the HTML body only. A body the layout does not have is rendered without it. The
    `<style>` rules of the finished HTML (layout included) are inlined when `inline` (Postmark's `InlineCss`).
    The whole message spends `budget` (a fresh `Budget()` by default); OffloadNeeded passes through.
    """
    budget = budget or Budget()
    subject = _render_part(template.subject or "", None, model, html=False, field="Subject", budget=budget)
    subject = " ".join(subject.splitlines())  # a header is one line
    html_body = text_body = None
    if template.html_body is not None:
        html_body = _render_part(
            template.html_body, layout.html_body if layout else None, model, html=True, field="HtmlBody", budget=budget
        )
        if inline:
            budget.inline_css(len(html_body))
            html_body = inline_css(html_body)
    if template.text_body is not None:
        text_body = _render_part(
            template.text_body, layout.text_body if layout else None, model, html=False, field="TextBody", budget=budget
        )
    if len(subject) > MAX_SUBJECT_CHARS:
        raise PostmarkError(ErrorCode.TEMPLATE_FIELD_TOO_LARGE, f"The rendered 'Subject' must be at most {MAX_SUBJECT_CHARS} characters.")
    for body, name in ((html_body, "HtmlBody"), (text_body, "TextBody")):
        if body is not None and len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise PostmarkError(ErrorCode.TEMPLATE_FIELD_TOO_LARGE, f"The rendered '{name}' must be at most 5 MB.")
    return RenderedTemplate(subject=subject, html_body=html_body, text_body=text_body)
