"""Mustachio's values, rendering and model inference over a parsed node tree (see `mustachio`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

from api_service.templates.budget import Budget
from api_service.templates.mustachio_syntax import (
    EACH_NOT_A_LIST,
    MAX_MODEL_DEPTH,
    PARENT,
    BlockKind,
    Path,
    TemplateRenderError,
    _Block,
    _Node,
    _Text,
    _Value,
)

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
    """The pieces of a rendering, and the budget it spends (see `budget`): work per node, characters per piece."""

    __slots__ = ("budget", "pieces")

    def __init__(self, budget: Budget) -> None:
        self.pieces: list[str] = []
        self.budget = budget

    def append(self, text: str) -> None:
        self.budget.write(len(text))
        self.pieces.append(text)


def _render(nodes: list[_Node], scope: _Scope, out: _Output, html: bool, content: str | None, strict: bool) -> None:
    spend = out.budget.spend
    spend(len(nodes))  # every node of the list, each time the list is rendered (once per loop element)
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Value):
            if len(node.path) > 1:
                spend(len(node.path))
            value = _resolve(scope, node.path).value
            if value is not None:
                text = to_text(value)
                out.append(escape_html(text) if html and node.escape else text)
        elif isinstance(node, _Block):
            if len(node.path) > 1:
                spend(len(node.path))
            found = _resolve(scope, node.path)
            if node.kind is BlockKind.EACH:
                items = found.value
                if isinstance(items, list | tuple):
                    spend(len(items))
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
