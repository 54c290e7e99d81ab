"""`POST /templates/validate` without its database read: check, suggest a model, render. Pure, no I/O.

It runs as one budgeted step (`budget.run_budgeted`): a small template is checked on the event loop, a large one
(or one whose test model makes it render a lot) in a thread, with the rendering budget and deadline of `budget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_service.templates import mustachio
from api_service.templates.budget import Budget
from api_service.templates.css import inline_css
from api_service.templates.rendering import TemplateParts, merge_models
from shared.constants import TemplateType
from shared.schemas.templates import TemplateContentValidation, TemplateValidation, TemplateValidationError

BODIES = ("HtmlBody", "TextBody")


def placeholder_problem(template_type: TemplateType, part: str, count: int) -> str | None:
    """Postmark's rule 1131: a Layout's bodies hold `{{{ @content }}}` exactly once; nothing else holds it."""
    if template_type is TemplateType.LAYOUT and part in BODIES:
        if count != 1:
            return f"The layout content placeholder {mustachio.CONTENT_PLACEHOLDER} must be present exactly once in the {part} (found {count})."
        return None
    if count:
        return f"The layout content placeholder {mustachio.CONTENT_PLACEHOLDER} may only be used in the HtmlBody and TextBody of a Layout."
    return None


@dataclass(frozen=True, slots=True)
class ValidateStep:
    """What a validate request asks, with the layout it names already read."""

    given: dict[str, str]
    template_type: TemplateType
    layout: TemplateParts | None
    test_model: dict[str, Any]
    inline: bool


def _rendered(
    parts: dict[str, mustachio.Template], layout: dict[str, mustachio.Template], model: dict[str, Any], *, inline: bool, budget: Budget
) -> dict[str, str | mustachio.TemplateRenderError]:
    out: dict[str, str | mustachio.TemplateRenderError] = {}
    for part, template in parts.items():
        html = part == "HtmlBody"
        own = budget.for_message()  # each part its own budget, so that each reports its own outcome
        try:
            content = template.render(model, html=html, strict=True, budget=own)
            if part in layout:
                content = mustachio.render_in_layout(layout[part], content=content, model=model, html=html, strict=True, budget=own)
        except mustachio.TemplateRenderError as exc:
            out[part] = exc
            continue
        if html and inline:
            budget.inline_css(len(content))
            content = inline_css(content)
        out[part] = content
    return out


def _check(source: str, part: str, template_type: TemplateType, budget: Budget) -> list[TemplateValidationError]:
    errors = [
        TemplateValidationError(Message=e.message, Line=e.line, CharacterPosition=e.character) for e in mustachio.validate(source, budget)
    ]
    if template_type is TemplateType.LAYOUT and part == "Subject":
        errors.append(TemplateValidationError(Message="A Layout template has no 'Subject'.", Line=None, CharacterPosition=None))
    problem = placeholder_problem(template_type, part, mustachio.content_placeholder_count(source, budget))
    if problem:
        errors.append(TemplateValidationError(Message=problem, Line=None, CharacterPosition=None))
    return errors


def validate_parts(step: ValidateStep, budget: Budget) -> TemplateValidation:
    """Each part's errors, the suggested model (the test model over it), and each valid part rendered with it."""
    layout_sources = {
        part: source
        for part, source in (
            ("HtmlBody", step.layout.html_body if step.layout else None),
            ("TextBody", step.layout.text_body if step.layout else None),
        )
        if source is not None
    }
    layout = {part: mustachio.compile_template(source, budget) for part, source in layout_sources.items()}
    sections: dict[str, TemplateContentValidation] = {}
    valid: dict[str, mustachio.Template] = {}
    for part, source in step.given.items():
        errors = _check(source, part, step.template_type, budget)
        if errors:
            sections[part] = TemplateContentValidation(ContentIsValid=False, ValidationErrors=errors, RenderedContent=None)
        else:
            valid[part] = mustachio.compile_template(source, budget)

    sources = [step.given[p] for p in valid] + list(layout_sources.values())
    suggested = merge_models(mustachio.suggested_model(*sources, budget=budget), step.test_model)
    for part, result in _rendered(valid, layout, suggested, inline=step.inline, budget=budget).items():
        if isinstance(result, mustachio.TemplateRenderError):
            error = TemplateValidationError(Message=f"Rendering with the test model failed: {result}", Line=None, CharacterPosition=None)
            sections[part] = TemplateContentValidation(ContentIsValid=False, ValidationErrors=[error], RenderedContent=None)
        else:
            sections[part] = TemplateContentValidation(ContentIsValid=True, ValidationErrors=[], RenderedContent=result)
    return TemplateValidation(
        AllContentIsValid=all(s.ContentIsValid for s in sections.values()),
        HtmlBody=sections.get("HtmlBody"),
        TextBody=sections.get("TextBody"),
        Subject=sections.get("Subject"),
        SuggestedTemplateModel=suggested,
    )
