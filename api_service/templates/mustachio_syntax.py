"""Mustachio's syntax: the limits, the error messages, the node tree and the one-pass parser (see `mustachio`)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum

MAX_DEPTH = 100
MAX_ERRORS = 100
MAX_MODEL_DEPTH = 32
MAX_TAGS = 20_000  # per template: bounds parsing, validation, model inference and the tree's size
# Per message: its subject and both bodies, a layout counting its content again; 5 MB bodies fit, twice over.
MAX_OUTPUT_CHARS = 40_000_000
# Rendering's budget (see `budget`): units of work per message, on the loop per step, and wall time per step.
MAX_RENDER_WORK = 2_000_000
LOOP_WORK = 20_000
LOOP_CHARS = 1_000_000
RENDER_SECONDS = 5.0
CLOCK_EVERY = 10_000
PARSE_CHARS_PER_UNIT = 1
CSS_CHARS_PER_UNIT = 40
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
TOO_MANY_TAGS = f"The template has more than {MAX_TAGS:,} tags: split it, or move repeated content into a loop."
TOO_MUCH_WORK = f"Rendering stopped: with this model the template renders more than {MAX_RENDER_WORK:,} tags, texts and loop elements."
TOO_SLOW = f"Rendering stopped: it took longer than {RENDER_SECONDS:g} seconds."
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
    message), and in every mode when a rendering goes past its budget (`MAX_RENDER_WORK`, `MAX_OUTPUT_CHARS`, the
    deadline of a threaded step)."""


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
    pos = text_from = tags = 0
    while (start := source.find("{{", pos)) >= 0:
        tags += 1
        if tags > MAX_TAGS:
            parser.error(start, TOO_MANY_TAGS)
            return parser.finish()
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
    """Sort by position, keep the first MAX_ERRORS, and turn offsets into 1-based line and UTF-16 column.

    One pass from error to error: the source is read once whatever the number of errors and the length of a line.
    """
    located: list[ValidationError] = []
    line, column, counted_to = 1, 1, 0  # `column` is the column of `counted_to`
    for index, message in sorted(errors, key=lambda e: e[0])[:MAX_ERRORS]:
        newlines = source.count("\n", counted_to, index)
        if newlines:
            line += newlines
            counted_to, column = source.rfind("\n", counted_to, index) + 1, 1
        column += len(source[counted_to:index].encode("utf-16-le", "surrogatepass")) // 2
        counted_to = index
        located.append(ValidationError(message, line, column))
    return located
