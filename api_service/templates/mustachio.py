"""Postmark's template language, Mustachio: parse, validate, render, infer a model. Pure functions, no I/O.

Why hand-written. The maintained Python Mustache libraries (pystache 0.6, chevron and its forks) implement
the Mustache spec, and Mustachio is not Mustache: names resolve in the current scope only (no walk outwards),
`../` climbs one scope, `{{#each x}}` loops while `{{#x}}` over a list does *not* loop, the HTML escaping is
.NET's, there is a model inference (Postmark's `SuggestedTemplateModel`), and `POST /templates/validate` needs
*every* syntax error with its line and column, where those libraries stop at the first one or at none. Bending
one of them would mean replacing its tokenizer, its context stack, its escaping and its error reporting, which
is all of it. So this module is a small scanner plus a tree walker, written from Mustachio's documented and
tested behaviour (github wildbit/mustachio: Tokenizer.cs, ContextObject.cs, InferredTemplateModel.cs and their
xunit fixtures) and Postmark's help article "Template Syntax" (postmarkapp.com/support/article/1077-template-syntax).

Safety. The scanner is one left-to-right pass with `str.find` and one-character-class searches (nothing that
backtracks): linear in the size of the source. Sections may nest `MAX_DEPTH` deep (deeper is a syntax error),
so rendering and model inference recurse a bounded number of times; a template with a syntax error is never
rendered. `validate` returns at most `MAX_ERRORS` errors; the inferred model is at most `MAX_MODEL_DEPTH`
objects deep; a template has at most `MAX_TAGS` tags (more is a syntax error), which bounds parsing, validation
and inference whatever the size of the source. Rendering is bounded too, because the model comes with the
request: nested `{{#each}}` blocks multiply (three levels over a 1,000-item list is a billion steps), and so does
a loop around 20,000 tags, so one rendering spends a `Budget` (see `budget`): one unit per node rendered, per loop
element and per step of a dotted path, at most `MAX_RENDER_WORK`, and at most `MAX_OUTPUT_CHARS` characters of
output, or it raises TemplateRenderError, in every mode. `compile_template` keeps recently parsed templates by
source, for batches that share one: at most `CACHE_ENTRIES` of them and `CACHE_CHARS` characters of source in all, since a parsed
tree takes some tens of bytes per character of a tag-dense source (`POST /templates/validate` takes 10 MB).

The language, as Mustachio implements it:
- `{{ path }}` prints a value, HTML-encoded when the body is HTML (`render(..., html=True)`), untouched in text
  bodies and subjects. `{{{ path }}}` and `{{& path }}` never encode. Whitespace inside the braces is ignored,
  but a sigil (`# ^ / & !`) must follow the braces directly, as in Mustachio.
- Encoding is .NET's `HttpUtility.HtmlEncode`, which Mustachio calls: `< > & " '` become `&lt; &gt; &amp;
  &quot; &#39;`, U+00A0..U+00FF and characters outside the BMP become decimal references (`&#233;`), a lone
  surrogate becomes U+FFFD. Quotes are escaped, as by `html.escape`, but `'` is spelt `&#39;`, not `&#x27;`.
- Values print as .NET prints them (Mustachio's fixture: `false` → `False`): `true` → `True`, `3.0` → `3`,
  `1e15` → `1E+15`, `1e-5` → `1E-05`; `null`, a missing key, an object or a list print nothing.
- Paths: `a.b.c`; `.` (and, as an extension Postmark's own help pages use, `this`) is the current value;
  `../` climbs one scope and may repeat (`../../x`); climbing above the root stays at the root. A name is looked
  up in the current scope only (Mustachio's ContextObject does not search outer scopes: use `../`). Valid path
  characters are letters, digits and `_`; anything else (`@index`, `-`, spaces) is a syntax error, as in
  Mustachio, which has no `@index`/`@first`/`@last`.
- Truthiness ("exists"): `null`, `false`, `0`, `0.0`, `""`, `[]` and `{}` are false; everything else is true.
- `{{#x}}…{{/x}}` renders its body once with `x` as the scope when `x` is true. A non-empty list is *not*
  iterated: the scope becomes the list, which is why Postmark's own starter templates write
  `{{#items}}{{#each .}}…{{/each}}{{/items}}`. `{{#each x}}…{{/each}}` renders the body once per element of a
  list, with the element as the scope and the list as its parent (so the model root is `../../` from inside a
  top-level `each`, as in Postmark's "reach up" example). `{{#each}}` over a value that is not a list renders
  nothing by default; Mustachio throws there, which `render(..., strict=True)` reproduces.
- `{{^x}}…{{/x}}` renders its body when `x` is false, with the (missing) `x` as the scope: use `../name` inside
  it to reach the enclosing scope, as Mustachio's own test does. `{{#x}}yes{{^x}}no{{/x}}` is Mustachio's "else".
- `{{! comment }}` prints nothing. Tags on a line of their own keep their line break (no Mustache
  "standalone" trimming in Mustachio).
- `{{{ @content }}}` is the layout placeholder (`render_in_layout`); `{{{ pm:unsubscribe }}}` is kept in the
  output as written, for the unsubscribe step that replaces it per recipient.

Where this differs from Mustachio. Stricter, where Mustachio lets the text through as literal: a `{{` that never
reaches a `}}` (`{{name`, `{{ name }`), an empty tag (`{{}}`, `{{ }}`, `{{#}}`), and sections nested deeper than
`MAX_DEPTH` are errors. More lenient: `{{#each_item}}` is a section (Mustachio rejects any tag that starts with
`{{#each` without a space after it), and `{{/ each }}` may have spaces. A mismatched close names both tags after
Mustachio's sentence. Model inference counts an `each` element as a scope level, as rendering does (Mustachio's
inference does not, so it places `../../x` inside an `each` one level too high). Error positions are 1-based,
the column counted in UTF-16 code units, as .NET and browsers count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from api_service.templates.budget import Budget
from api_service.templates.mustachio_render import (
    ModelShape,
    _infer,
    _Output,
    _render,
    _Scope,
    escape_html,
    format_double,
)
from api_service.templates.mustachio_syntax import (
    CACHE_CHARS,
    CACHE_ENTRIES,
    CONTENT_NEEDS_THREE_BRACES,
    CONTENT_PLACEHOLDER,
    EACH_CLOSE_SYNTAX,
    EACH_NEEDS_PATH,
    EACH_NOT_OPEN,
    EMPTY_TAG,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_MODEL_DEPTH,
    MAX_OUTPUT_CHARS,
    MAX_RENDER_WORK,
    MAX_TAGS,
    TOO_DEEP,
    UNCLOSED_TAG,
    TemplateRenderError,
    TemplateSyntaxError,
    ValidationError,
    _locate,
    _Node,
    _parse,
    parse_path,
)

__all__ = [
    "CACHE_CHARS",
    "CACHE_ENTRIES",
    "CONTENT_NEEDS_THREE_BRACES",
    "CONTENT_PLACEHOLDER",
    "EACH_CLOSE_SYNTAX",
    "EACH_NEEDS_PATH",
    "EACH_NOT_OPEN",
    "EMPTY_TAG",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_MODEL_DEPTH",
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_WORK",
    "MAX_TAGS",
    "TOO_DEEP",
    "UNCLOSED_TAG",
    "Budget",
    "ModelShape",
    "Template",
    "TemplateRenderError",
    "TemplateSyntaxError",
    "ValidationError",
    "cache_size",
    "compile_template",
    "content_placeholder_count",
    "escape_html",
    "format_double",
    "parse_path",
    "render_in_layout",
    "suggested_model",
    "validate",
]


# ---------------------------------------------------------------------------------------------------------------
# Public API


class Template:
    """A parsed, valid template. Immutable; render it as often as needed."""

    __slots__ = ("_nodes", "content_placeholders")

    def __init__(self, nodes: list[_Node], content_placeholders: int) -> None:
        self._nodes = nodes
        self.content_placeholders = content_placeholders

    def render(self, model: object, *, html: bool, strict: bool = False, budget: Budget | None = None) -> str:
        """Fill the template from a JSON-shaped model (dict, list, str, int, float, bool, None).

        `html=True` for an HtmlBody (`{{ x }}` is HTML-encoded), False for a TextBody or a Subject. A layout
        placeholder renders as nothing here; use `render_in_layout`. `strict=True` raises TemplateRenderError
        where Mustachio throws, `{{#each x}}` over an `x` that is true but not a list (Postmark then bounces the
        message as TemplateRenderingFailed); by default such a block renders nothing. Past its `budget` (a fresh
        `Budget()` by default: `MAX_RENDER_WORK`, `MAX_OUTPUT_CHARS`) it raises TemplateRenderError in either mode.
        """
        out = _Output(budget or Budget())
        _render(self._nodes, _Scope(model, None), out, html, None, strict)
        return "".join(out.pieces)

    def variables(self, into: ModelShape | None = None) -> ModelShape:
        """The model this template uses, added to `into` (a fresh root by default) and returned."""
        root = into if into is not None else ModelShape()
        _infer(self._nodes, root)
        return root

    def _render_with_content(self, model: object, *, html: bool, content: str, strict: bool, budget: Budget | None) -> str:
        out = _Output(budget or Budget())
        _render(self._nodes, _Scope(model, None), out, html, content, strict)
        return "".join(out.pieces)


def validate(source: str, budget: Budget | None = None) -> list[ValidationError]:
    """Every syntax error of a template (at most MAX_ERRORS), first to last; [] when it is valid.

    Never raises, except OffloadNeeded from an on-loop `budget` when the source is too large to parse there.
    """
    if budget is not None:
        budget.parse(len(source))
    parsed = _parse(source)
    return _locate(source, parsed.errors)


_CACHE: OrderedDict[str, Template] = OrderedDict()
_CACHE_LOCK = threading.Lock()  # heavy renderings run in threads (see `budget`); the parse itself runs unlocked
_cache_chars = 0


def compile_template(source: str, budget: Budget | None = None) -> Template:
    """Parse a template once (cached by source); raises TemplateSyntaxError with the first of its errors.

    A parse (not a cache hit) is charged to `budget`, when given.
    """
    global _cache_chars
    with _CACHE_LOCK:
        cached = _CACHE.get(source)
        if cached is not None:
            _CACHE.move_to_end(source)
            return cached
    if budget is not None:
        budget.parse(len(source))
    parsed = _parse(source)
    if parsed.errors:
        raise TemplateSyntaxError(_locate(source, parsed.errors))
    template = Template(parsed.nodes, parsed.placeholders)
    if len(source) <= CACHE_CHARS:
        with _CACHE_LOCK:
            if source not in _CACHE:
                _CACHE[source] = template
                _cache_chars += len(source)
            while len(_CACHE) > CACHE_ENTRIES or _cache_chars > CACHE_CHARS:
                evicted, _ = _CACHE.popitem(last=False)
                _cache_chars -= len(evicted)
    return template


def cache_size() -> tuple[int, int]:
    """How many parsed templates are cached, and how many characters of source they hold."""
    with _CACHE_LOCK:
        return len(_CACHE), _cache_chars


def suggested_model(*sources: str, budget: Budget | None = None) -> dict[str, object]:
    """Postmark's SuggestedTemplateModel for the given parts (subject, HTML body, text body, layout …).

    Each name a template uses gets a placeholder: `{{ name }}` → `"name_Value"`, a section → an object of what
    it uses, `{{#each items}}{{ title }}{{/each}}` → `[{"title": "title_Value"}]`, and `{{#each tags}}{{ . }}`
    → `["tags_1", "tags_2", "tags_3"]`. Dotted paths become nested objects. Parts with syntax errors add nothing.
    """
    root = ModelShape()
    for source in sources:
        try:
            template = compile_template(source, budget)
        except TemplateSyntaxError:
            continue
        template.variables(into=root)
    return root.fields()


def content_placeholder_count(source: str, budget: Budget | None = None) -> int:
    """How many `{{{ @content }}}` placeholders a template has, even an invalid one. Never raises.

    Postmark requires exactly one in a Layout's HtmlBody and TextBody (ErrorCode 1131). `validate` accepts the
    placeholder in any template; a Standard template that has one is for the caller to refuse.
    """
    if budget is not None:
        budget.parse(len(source))
    return _parse(source).placeholders


def render_in_layout(
    layout: Template, *, content: str, model: object, html: bool, strict: bool = False, budget: Budget | None = None
) -> str:
    """Render a layout with `content` (an already rendered Standard template) in place of `{{{ @content }}}`.

    The content is inserted as it is, not encoded again; the layout itself is rendered against the same model.
    `strict` and `budget` as in `Template.render`.
    """
    return layout._render_with_content(model, html=html, content=content, strict=strict, budget=budget)
