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
objects deep. Rendering is bounded too, because the model comes with the request: nested `{{#each}}` blocks
multiply (three levels over a 1,000-item list is a billion steps), so one rendering may run at most
`MAX_LOOP_ITERATIONS` loop iterations and produce at most `MAX_OUTPUT_CHARS` characters, or it raises
TemplateRenderError, in every mode. `compile_template` keeps recently parsed templates by source, for batches
that share one: at most `CACHE_ENTRIES` of them and `CACHE_CHARS` characters of source in all, since a parsed
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

import math
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

MAX_DEPTH = 100
MAX_ERRORS = 100
MAX_MODEL_DEPTH = 32
MAX_LOOP_ITERATIONS = 1_000_000
MAX_OUTPUT_CHARS = 20_000_000  # four times the 5 MB a body may have once rendered
CACHE_ENTRIES = 256
CACHE_CHARS = 2_000_000

CONTENT_PLACEHOLDER = "{{{ @content }}}"
UNSUBSCRIBE_PLACEHOLDER = "{{{ pm:unsubscribe }}}"

# Mustachio's messages, kept word for word where Mustachio has one (clients may show them as they are).
EACH_NEEDS_PATH = "The 'each' block being opened requires a model path to be specified in the form '{{#each <name>}}'."
EACH_CLOSE_SYNTAX = "The syntax to close the 'each' block should be: '{{/each}}'."
EACH_NOT_OPEN = "An 'each' block is being closed, but no corresponding opening element ('{{#each <name>}}') was detected."
MISMATCHED = "It appears that open and closing elements are mismatched."
NOT_CLOSED = "A scope block to the following path was opened but not closed: '{path}', please close it using the appropriate syntax."
INVALID_PATH = "The path '{path}' is not valid. Please see documentation for examples of valid paths."
EMPTY_TAG = "This tag is empty: put a model path between the braces, for example '{{ name }}'."
UNCLOSED_TAG = "This tag is not closed: '{{' needs a matching '}}', and a tag cannot contain '{' or '}'."
EACH_NOT_A_LIST = "'{path}' is used like an array by the template, but is a scalar value or object in your model."
TOO_DEEP = f"Sections are nested more than {MAX_DEPTH} levels deep."
TOO_MANY_ITERATIONS = f"Rendering stopped: the template's loops ran more than {MAX_LOOP_ITERATIONS:,} times with this model."
TOO_MUCH_OUTPUT = f"Rendering stopped: the result grew past {MAX_OUTPUT_CHARS:,} characters with this model."
CONTENT_NEEDS_THREE_BRACES = "The layout placeholder is written with three braces: '{{{ @content }}}'."


class TemplateSyntaxError(Exception):
    """The first syntax error of a template; `errors` holds all of them (at most MAX_ERRORS)."""

    def __init__(self, errors: list[ValidationError]) -> None:
        first = errors[0]
        super().__init__(f"{first.message} (line {first.line}, character {first.character})")
        self.message = first.message
        self.line = first.line
        self.character = first.character
        self.errors = errors


class TemplateRenderError(Exception):
    """The model does not fit the template: from `render(..., strict=True)` where Mustachio throws (Mustachio's
    message), and in every mode when a rendering goes past `MAX_LOOP_ITERATIONS` or `MAX_OUTPUT_CHARS`."""


@dataclass(frozen=True, slots=True)
class ValidationError:
    """One syntax error, as `POST /templates/validate` reports it: Message, Line, CharacterPosition (1-based)."""

    message: str
    line: int
    character: int


# ---------------------------------------------------------------------------------------------------------------
# Syntax tree

Path = tuple[str, ...]  # names, and PARENT for each `../`; () is the current scope
PARENT = ".."


class BlockKind(Enum):
    SECTION = "#"
    INVERTED = "^"
    EACH = "#each"


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Value:
    path: Path
    escape: bool


@dataclass(frozen=True, slots=True)
class _Block:
    kind: BlockKind
    path: Path
    name: str
    children: list[_Node] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Placeholder:
    """`{{{ @content }}}` in a layout."""


_Node = _Text | _Value | _Block | _Placeholder
_PLACEHOLDER = _Placeholder()


# ---------------------------------------------------------------------------------------------------------------
# Parsing


def _is_word(ch: str) -> bool:
    """.NET's `\\w`, which Mustachio's path check uses: letters, non-spacing marks, decimal digits, connectors."""
    if ch.isascii():
        return ch.isalnum() or ch == "_"
    category = unicodedata.category(ch)
    return category[0] == "L" or category in ("Mn", "Nd", "Pc")


def parse_path(text: str) -> Path | None:
    """Split a path like `../a.b` into steps; None when Mustachio would reject it.

    Mustachio rejects three dots in a row, two dots not followed by `/`, a `/` not preceded by two dots, and any
    character that is not a word character, `.` or `/`.
    """
    steps: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("../", i):
            steps.append(PARENT)
            i += 3
        elif text[i] == ".":
            if text.startswith("..", i):
                return None
            i += 1
        else:
            j = i
            while j < n and text[j] != ".":
                if not _is_word(text[j]):
                    return None
                j += 1
            steps.append(text[i:j])
            i = j
    for k, step in enumerate(steps):
        if step != PARENT:
            if step == "this":
                del steps[k]
            break
    return tuple(steps)


@dataclass(slots=True)
class _Open:
    kind: BlockKind
    name: str
    index: int
    block: _Block

    def tag(self) -> str:
        return "{{" + ("#each " if self.kind is BlockKind.EACH else self.kind.value) + self.name + "}}"


@dataclass(slots=True)
class _Parsed:
    nodes: list[_Node]
    errors: list[tuple[int, str]]  # (offset in the source, message)
    placeholders: int


_BRACE = re.compile(r"[{}]")
_NOT_OPEN_BRACE = re.compile(r"[^{]")


class _Parser:
    """Builds the tree while tracking open sections on an explicit stack (no recursion, any input)."""

    def __init__(self) -> None:
        self.root: list[_Node] = []
        self.stack: list[_Open] = []
        self.errors: list[tuple[int, str]] = []
        self.placeholders = 0

    def _out(self) -> list[_Node]:
        return self.stack[-1].block.children if self.stack else self.root

    def text(self, text: str) -> None:
        if text:
            self._out().append(_Text(text))

    def error(self, index: int, message: str) -> None:
        self.errors.append((index, message))

    def tag(self, inner: str, index: int, *, triple: bool) -> None:
        if triple:
            name = inner.strip()
            if name.startswith("&"):
                name = name[1:].strip()
            if name == "@content":
                self.placeholders += 1
                self._out().append(_PLACEHOLDER)
            elif name == "pm:unsubscribe":
                self._out().append(_Text(UNSUBSCRIBE_PLACEHOLDER))
            else:
                self.value(name, index, escape=False)
            return
        sigil, rest = inner[0], inner[1:]
        if sigil == "!":
            return
        if sigil == "#":
            if rest.startswith("each") and (len(rest) == 4 or rest[4].isspace()):
                self.open_each(rest[4:].strip(), index)
            else:
                self.open(BlockKind.SECTION, rest.strip(), index)
        elif sigil == "^":
            self.open(BlockKind.INVERTED, rest.strip(), index)
        elif sigil == "/":
            self.close(rest.strip(), index)
        elif sigil == "&":
            self.value(rest.strip(), index, escape=False)
        else:
            self.value(inner.strip(), index, escape=True)

    def _path(self, name: str, index: int) -> Path:
        path = parse_path(name)
        if path is None:
            self.error(index, INVALID_PATH.format(path=name))
            return ()
        return path

    def value(self, name: str, index: int, *, escape: bool) -> None:
        if not name:
            self.error(index, EMPTY_TAG)
        elif name == "@content":
            self.error(index, CONTENT_NEEDS_THREE_BRACES)
        else:
            self._out().append(_Value(self._path(name, index), escape))

    def _push(self, kind: BlockKind, name: str, index: int, path: Path) -> None:
        block = _Block(kind, path, name)
        if len(self.stack) >= MAX_DEPTH:
            # Reported, and kept off the tree so that the tree stays shallow whatever the input.
            self.error(index, TOO_DEEP)
        else:
            self._out().append(block)
        self.stack.append(_Open(kind, name, index, block))

    def open_each(self, name: str, index: int) -> None:
        if not name:
            self.error(index, EACH_NEEDS_PATH)
            return
        self._push(BlockKind.EACH, name, index, self._path(name, index))

    def open(self, kind: BlockKind, name: str, index: int) -> None:
        if not name:
            self.error(index, EMPTY_TAG)
            return
        path = self._path(name, index)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.kind is not BlockKind.EACH and top.name == name:
            # Mustachio's "else": `{{#x}}…{{^x}}…{{/x}}` closes the first block and opens the second in its place.
            self.stack.pop()
            self._push(kind, name, top.index, path)
            return
        self._push(kind, name, index, path)

    def close(self, name: str, index: int) -> None:
        top = self.stack[-1] if self.stack else None
        if name == "each":
            if top is not None and top.kind is BlockKind.EACH:
                self.stack.pop()
            else:
                self.error(index, EACH_NOT_OPEN)
        elif name.startswith("each") and name[4].isspace():
            self.error(index, EACH_CLOSE_SYNTAX)
        elif not name:
            self.error(index, EMPTY_TAG)
        elif top is not None and top.kind is not BlockKind.EACH and top.name == name:
            self.stack.pop()
        else:
            opened = "any open block" if top is None else f"'{top.tag()}'"
            self.error(index, f"{MISMATCHED} '{{{{/{name}}}}}' does not close {opened}.")

    def finish(self) -> _Parsed:
        for still_open in self.stack:
            self.error(still_open.index, NOT_CLOSED.format(path=still_open.name))
        return _Parsed(self.root, self.errors, self.placeholders)


def _parse(source: str) -> _Parsed:
    """One pass over the source, finding tags the way Mustachio's tokenizer regex does, without backtracking.

    Mustachio's tags are `{{` + one or more characters other than braces + `}}`, or the same with three braces.
    In a run of more than three `{`, the extra braces are text; when `{{{x}}` does not close with three braces it
    is a `{` followed by the tag `{{x}}`.
    """
    parser = _Parser()
    n = len(source)
    pos = text_from = 0
    while (start := source.find("{{", pos)) >= 0:
        after = _NOT_OPEN_BRACE.search(source, start + 2)
        run_end = after.start() if after else n
        braces = min(run_end - start, 3)
        match = _BRACE.search(source, run_end)
        end = match.start() if match else n
        inner = source[run_end:end]
        if inner and braces == 3 and source.startswith("}}}", end):
            tag_start, tag_end, triple = run_end - 3, end + 3, True
        elif inner and source.startswith("}}", end):
            tag_start, tag_end, triple = run_end - 2, end + 2, False
        else:
            parser.error(start, EMPTY_TAG if not inner and source.startswith("}}", end) else UNCLOSED_TAG)
            pos = max(end, run_end)
            continue
        parser.text(source[text_from:tag_start])
        parser.tag(inner, tag_start, triple=triple)
        pos = text_from = tag_end
    parser.text(source[text_from:])
    return parser.finish()


def _locate(source: str, errors: list[tuple[int, str]]) -> list[ValidationError]:
    """Sort by position, keep the first MAX_ERRORS, and turn offsets into 1-based line and UTF-16 column."""
    located: list[ValidationError] = []
    for index, message in sorted(errors, key=lambda e: e[0])[:MAX_ERRORS]:
        line_start = source.rfind("\n", 0, index) + 1
        column = len(source[line_start:index].encode("utf-16-le", "surrogatepass")) // 2 + 1
        located.append(ValidationError(message, source.count("\n", 0, index) + 1, column))
    return located


# ---------------------------------------------------------------------------------------------------------------
# Values: truthiness, printing, HTML encoding


def is_truthy(value: object) -> bool:
    """Mustachio's `Exists()`: null, false, zero, "" and empty lists/objects are false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float | Decimal):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def format_double(value: float) -> str:
    """A float as .NET Core prints a double: shortest round-trip digits, `E+XX` from 1e15 and below 1e-4."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    _, digits_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    if not isinstance(exponent, int):  # only NaN and infinities have a letter here, and they returned above
        return repr(value)
    digits = "".join(map(str, digits_tuple))
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    leading = len(digits) + exponent - 1  # the power of ten of the first digit
    if leading >= 15 or leading < -4:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}E{'+' if leading >= 0 else '-'}{abs(leading):02d}"
    point = leading + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def to_text(value: object) -> str:
    """How a model value prints: strings and numbers as .NET prints them; objects, lists and null print nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # longer than sys.get_int_max_str_digits(): no JSON number is
            return ""
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, Decimal):
        return str(value)
    return ""


_HTML_ESCAPES: dict[int, str] = {
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("&"): "&amp;",
    ord('"'): "&quot;",
    ord("'"): "&#39;",
    **{code: f"&#{code};" for code in range(0xA0, 0x100)},
}
_ASTRAL_OR_SURROGATE = re.compile("[\U00010000-\U0010ffff\ud800-\udfff]")


def _astral_reference(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else f"&#{code};"


def escape_html(text: str) -> str:
    """.NET's `WebUtility.HtmlEncode`, which Mustachio uses for `{{ x }}` in HTML bodies."""
    return _ASTRAL_OR_SURROGATE.sub(_astral_reference, text.translate(_HTML_ESCAPES))


# ---------------------------------------------------------------------------------------------------------------
# Rendering


class _Scope:
    """A value and the scope it was reached from (what `../` climbs to)."""

    __slots__ = ("parent", "value")

    def __init__(self, value: object, parent: _Scope | None) -> None:
        self.value = value
        self.parent = parent


def _resolve(scope: _Scope, path: Path) -> _Scope:
    for step in path:
        if step == PARENT:
            scope = scope.parent or scope
        else:
            value = scope.value
            scope = _Scope(value.get(step) if isinstance(value, dict) else None, scope)
    return scope


class _Output:
    """The pieces of a rendering, with what it has spent of its budget (loop iterations, characters)."""

    __slots__ = ("chars", "iterations", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.chars = 0
        self.iterations = 0

    def append(self, text: str) -> None:
        self.chars += len(text)
        if self.chars > MAX_OUTPUT_CHARS:
            raise TemplateRenderError(TOO_MUCH_OUTPUT)
        self.pieces.append(text)

    def iterate(self, count: int) -> None:
        self.iterations += count
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateRenderError(TOO_MANY_ITERATIONS)


def _render(nodes: list[_Node], scope: _Scope, out: _Output, html: bool, content: str | None, strict: bool) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Value):
            value = _resolve(scope, node.path).value
            if value is not None:
                text = to_text(value)
                out.append(escape_html(text) if html and node.escape else text)
        elif isinstance(node, _Block):
            found = _resolve(scope, node.path)
            if node.kind is BlockKind.EACH:
                items = found.value
                if isinstance(items, list | tuple):
                    out.iterate(len(items))
                    for item in items:
                        _render(node.children, _Scope(item, found), out, html, content, strict)
                elif strict and is_truthy(items):
                    raise TemplateRenderError(EACH_NOT_A_LIST.format(path=node.name))
            elif is_truthy(found.value) == (node.kind is BlockKind.SECTION):  # an inverted block wants false
                _render(node.children, found, out, html, content, strict)
        elif content is not None:
            out.append(content)


# ---------------------------------------------------------------------------------------------------------------
# Model inference


@dataclass(eq=False)
class ModelShape:
    """What a template uses of its model: one node per name, as Mustachio's InferredTemplateModel records it.

    `scalar`: printed with `{{ }}`; `section`: opened with `{{# }}` or `{{^ }}`; `collection`: looped with
    `{{#each}}`, whose elements are described by `element`. `to_model()` gives Postmark's SuggestedTemplateModel.
    """

    key: str = ""
    parent: ModelShape | None = field(default=None, repr=False)
    depth: int = 0
    scalar: bool = False
    section: bool = False
    collection: bool = False
    children: dict[str, ModelShape] = field(default_factory=dict)
    element: ModelShape | None = None

    def child(self, key: str) -> ModelShape | None:
        if key not in self.children:
            if self.depth >= MAX_MODEL_DEPTH:
                return None
            self.children[key] = ModelShape(key=key, parent=self, depth=self.depth + 1)
        return self.children[key]

    def element_shape(self) -> ModelShape:
        if self.element is None:
            self.element = ModelShape(key=self.key, parent=self, depth=self.depth + 1)
        return self.element

    def fields(self) -> dict[str, object]:
        """The suggested model of an object: one placeholder per name used under it."""
        return {key: shape.to_model() for key, shape in self.children.items()}

    def to_model(self) -> object:
        """Placeholder values the way Postmark fills them: `name_Value`, `[{…}]` or `[items_1, items_2, items_3]`."""
        if self.collection:
            fields = self.fields() | (self.element.fields() if self.element else {})
            return [fields] if fields else [f"{self.key}_{i}" for i in (1, 2, 3)]
        if self.scalar and not self.section:
            return f"{self.key}_Value"
        return self.fields()


def _shape_at(scope: ModelShape, path: Path) -> ModelShape | None:
    shape: ModelShape | None = scope
    for step in path:
        if shape is None:
            return None
        shape = (shape.parent or shape) if step == PARENT else shape.child(step)
    return shape


def _infer(nodes: list[_Node], scope: ModelShape) -> None:
    for node in nodes:
        if isinstance(node, _Value):
            if (shape := _shape_at(scope, node.path)) is not None:
                shape.scalar = True
        elif isinstance(node, _Block) and (shape := _shape_at(scope, node.path)) is not None:
            if node.kind is BlockKind.EACH:
                shape.collection = True
                _infer(node.children, shape.element_shape())
            else:
                shape.section = True
                _infer(node.children, shape)


# ---------------------------------------------------------------------------------------------------------------
# Public API


class Template:
    """A parsed, valid template. Immutable; render it as often as needed."""

    __slots__ = ("_nodes", "content_placeholders")

    def __init__(self, nodes: list[_Node], content_placeholders: int) -> None:
        self._nodes = nodes
        self.content_placeholders = content_placeholders

    def render(self, model: object, *, html: bool, strict: bool = False) -> str:
        """Fill the template from a JSON-shaped model (dict, list, str, int, float, bool, None).

        `html=True` for an HtmlBody (`{{ x }}` is HTML-encoded), False for a TextBody or a Subject. A layout
        placeholder renders as nothing here; use `render_in_layout`. `strict=True` raises TemplateRenderError
        where Mustachio throws, `{{#each x}}` over an `x` that is true but not a list (Postmark then bounces the
        message as TemplateRenderingFailed); by default such a block renders nothing. Past the rendering budget
        (`MAX_LOOP_ITERATIONS`, `MAX_OUTPUT_CHARS`) it raises TemplateRenderError in either mode.
        """
        out = _Output()
        _render(self._nodes, _Scope(model, None), out, html, None, strict)
        return "".join(out.pieces)

    def variables(self, into: ModelShape | None = None) -> ModelShape:
        """The model this template uses, added to `into` (a fresh root by default) and returned."""
        root = into if into is not None else ModelShape()
        _infer(self._nodes, root)
        return root

    def _render_with_content(self, model: object, *, html: bool, content: str, strict: bool) -> str:
        out = _Output()
        _render(self._nodes, _Scope(model, None), out, html, content, strict)
        return "".join(out.pieces)


def validate(source: str) -> list[ValidationError]:
    """Every syntax error of a template (at most MAX_ERRORS), first to last; [] when it is valid. Never raises."""
    parsed = _parse(source)
    return _locate(source, parsed.errors)


_CACHE: OrderedDict[str, Template] = OrderedDict()
_cache_chars = 0


def compile_template(source: str) -> Template:
    """Parse a template once (cached by source); raises TemplateSyntaxError with the first of its errors."""
    global _cache_chars
    cached = _CACHE.get(source)
    if cached is not None:
        _CACHE.move_to_end(source)
        return cached
    parsed = _parse(source)
    if parsed.errors:
        raise TemplateSyntaxError(_locate(source, parsed.errors))
    template = Template(parsed.nodes, parsed.placeholders)
    if len(source) <= CACHE_CHARS:
        _CACHE[source] = template
        _cache_chars += len(source)
        while len(_CACHE) > CACHE_ENTRIES or _cache_chars > CACHE_CHARS:
            evicted, _ = _CACHE.popitem(last=False)
            _cache_chars -= len(evicted)
    return template


def cache_size() -> tuple[int, int]:
    """How many parsed templates are cached, and how many characters of source they hold."""
    return len(_CACHE), _cache_chars


def suggested_model(*sources: str) -> dict[str, object]:
    """Postmark's SuggestedTemplateModel for the given parts (subject, HTML body, text body, layout …).

    Each name a template uses gets a placeholder: `{{ name }}` → `"name_Value"`, a section → an object of what
    it uses, `{{#each items}}{{ title }}{{/each}}` → `[{"title": "title_Value"}]`, and `{{#each tags}}{{ . }}`
    → `["tags_1", "tags_2", "tags_3"]`. Dotted paths become nested objects. Parts with syntax errors add nothing.
    """
    root = ModelShape()
    for source in sources:
        try:
            template = compile_template(source)
        except TemplateSyntaxError:
            continue
        template.variables(into=root)
    return root.fields()


def content_placeholder_count(source: str) -> int:
    """How many `{{{ @content }}}` placeholders a template has, even an invalid one. Never raises.

    Postmark requires exactly one in a Layout's HtmlBody and TextBody (ErrorCode 1131). `validate` accepts the
    placeholder in any template; a Standard template that has one is for the caller to refuse.
    """
    return _parse(source).placeholders


def render_in_layout(layout: Template, *, content: str, model: object, html: bool, strict: bool = False) -> str:
    """Render a layout with `content` (an already rendered Standard template) in place of `{{{ @content }}}`.

    The content is inserted as it is, not encoded again; the layout itself is rendered against the same model.
    `strict` as in `Template.render`.
    """
    return layout._render_with_content(model, html=html, content=content, strict=strict)
