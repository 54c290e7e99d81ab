"""The pure parts: rendering a message from template, layout and model; the model merge; the whole-template check."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.errors import PostmarkError
from api_service.templates.mustachio import (
    CACHE_CHARS,
    CACHE_ENTRIES,
    MAX_OUTPUT_CHARS,
    TemplateRenderError,
    cache_size,
    compile_template,
    escape_html,
)
from api_service.templates.rendering import TemplateParts, merge_models, render_template
from api_service.templates.service import Draft, Reference, check_draft, placeholder_problem
from shared.constants import TemplateType

LAYOUT = TemplateParts(
    subject=None,
    html_body="<html><head><style>p { color: red; }</style></head><body><h1>{{ brand }}</h1>{{{ @content }}}</body></html>",
    text_body="{{ brand }}\n{{{ @content }}}",
)
TEMPLATE = TemplateParts(subject="Hi {{ name }}", html_body="<p>{{ name }}</p>", text_body="Hi {{ name }}")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self.text[self._open[-1]] = self.text.get(self._open[-1], "") + data


def parse(markup: str) -> Tags:
    parser = Tags()
    parser.feed(markup)
    parser.close()
    return parser


class TestRenderTemplate:
    def test_html_is_encoded_text_and_subject_are_not(self) -> None:
        out = render_template(TEMPLATE, None, {"name": "<b>Ann & Bob</b>"})
        assert out.subject == "Hi <b>Ann & Bob</b>"
        assert out.html_body == "<p>&lt;b&gt;Ann &amp; Bob&lt;/b&gt;</p>"
        assert out.text_body == "Hi <b>Ann & Bob</b>"

    def test_layout_wraps_both_bodies_and_css_is_inlined_after(self) -> None:
        out = render_template(TEMPLATE, LAYOUT, {"name": "Ann", "brand": "Acme"})
        assert out.html_body == (
            '<html><head><style>p { color: red; }</style></head><body><h1>Acme</h1><p style="color: red;">Ann</p></body></html>'
        )
        assert out.text_body == "Acme\nHi Ann"

    def test_inline_false_leaves_the_html_as_rendered(self) -> None:
        out = render_template(TEMPLATE, LAYOUT, {"name": "Ann", "brand": "Acme"}, inline=False)
        assert out.html_body is not None
        assert "<p>Ann</p>" in out.html_body

    def test_a_body_the_layout_lacks_is_rendered_alone(self) -> None:
        layout = TemplateParts(subject=None, html_body=None, text_body="[{{{ @content }}}]")
        out = render_template(TEMPLATE, layout, {"name": "Ann"})
        assert out.html_body == "<p>Ann</p>"
        assert out.text_body == "[Hi Ann]"

    def test_a_missing_body_stays_missing(self) -> None:
        out = render_template(TemplateParts(subject="s", html_body=None, text_body="t"), LAYOUT, {})
        assert out.html_body is None
        assert out.text_body == "\nt"

    def test_a_subject_is_one_line(self) -> None:
        out = render_template(TemplateParts(subject="{{ a }}", html_body=None, text_body="t"), None, {"a": "one\ntwo\r\nthree"})
        assert out.subject == "one two three"

    def test_each_over_a_scalar_is_1122(self) -> None:
        with pytest.raises(PostmarkError) as caught:
            render_template(TemplateParts(subject="s", html_body=None, text_body="{{#each a}}x{{/each}}"), None, {"a": 5})
        assert caught.value.error_code == 1122
        assert "'TextBody'" in caught.value.message

    def test_a_stored_template_that_no_longer_parses_is_1122(self) -> None:
        with pytest.raises(PostmarkError) as caught:
            render_template(TemplateParts(subject="{{#a}}", html_body=None, text_body="t"), None, {})
        assert caught.value.error_code == 1122

    def test_too_large_results_are_1121(self) -> None:
        with pytest.raises(PostmarkError) as caught:
            render_template(TemplateParts(subject="{{ a }}", html_body=None, text_body="t"), None, {"a": "x" * 2001})
        assert caught.value.error_code == 1121
        big = {"rows": ["x" * 1000] * 6000}
        with pytest.raises(PostmarkError) as caught:
            render_template(TemplateParts(subject="s", html_body=None, text_body="{{#each rows}}{{.}}{{/each}}"), None, big)
        assert caught.value.error_code == 1121

    @given(st.text())
    def test_html_escaping_is_never_skipped(self, value: str) -> None:
        out = render_template(TEMPLATE, None, {"name": value}, inline=False)
        assert out.html_body == f"<p>{escape_html(value)}</p>"
        assert out.text_body == f"Hi {value}"

    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("<>&\"' \n")))
    def test_a_value_never_becomes_markup_through_layout_and_inlining(self, value: str) -> None:
        out = render_template(TEMPLATE, LAYOUT, {"name": value, "brand": value})
        assert out.html_body is not None
        parsed = parse(out.html_body)
        assert parsed.tags == ["html", "head", "style", "body", "h1", "p"]
        assert html.unescape(parsed.text.get("p", "")) == value
        assert html.unescape(parsed.text.get("h1", "")) == value


class TestRenderingBudget:
    """A request brings the model, so nested loops must not let one request run (or grow) without end."""

    def test_nested_loops_stop_at_the_work_budget_in_every_mode(self) -> None:
        template = compile_template("{{#each a}}{{#each ../../a}}{{#each ../../../../a}}{{/each}}{{/each}}{{/each}}")
        model = {"a": list(range(200))}  # 8 million iterations
        for strict in (False, True):
            with pytest.raises(TemplateRenderError, match="renders more than"):
                template.render(model, html=True, strict=strict)

    def test_output_stops_at_the_character_budget(self) -> None:
        template = compile_template("{{#each a}}{{{ ../../b }}}{{/each}}")
        with pytest.raises(TemplateRenderError, match="grew past"):
            template.render({"a": list(range(500)), "b": "x" * 100_000}, html=False)
        assert MAX_OUTPUT_CHARS > 5 * 1024 * 1024

    def test_a_send_over_the_budget_is_1122(self) -> None:
        parts = TemplateParts(subject="s", html_body=None, text_body="{{#each a}}{{#each ../../a}}{{/each}}{{/each}}")
        with pytest.raises(PostmarkError) as caught:
            render_template(parts, None, {"a": list(range(1500))})  # 2.25 million loop elements
        assert caught.value.error_code == 1122


class TestParseCache:
    def test_the_cache_is_bounded_by_entries_and_by_characters(self) -> None:
        for i in range(CACHE_ENTRIES + 10):
            compile_template(f"{{{{ a{i} }}}}")
        assert cache_size()[0] == CACHE_ENTRIES
        big = "{{ x }}" + "." * (CACHE_CHARS // 3)
        for i in range(4):
            compile_template(big + str(i))
        entries, chars = cache_size()
        assert chars <= CACHE_CHARS
        assert entries < CACHE_ENTRIES

    def test_a_cached_template_is_the_same_object_and_a_huge_one_is_not_kept(self) -> None:
        assert compile_template("{{ same }}") is compile_template("{{ same }}")
        huge = "x" * (CACHE_CHARS + 1)
        assert compile_template(huge) is not compile_template(huge)
        assert cache_size()[1] <= CACHE_CHARS


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
JSON = st.recursive(JSON_LEAF, lambda inner: st.dictionaries(st.sampled_from("abcd"), inner, max_size=3), max_leaves=10)


def leaves(value: object, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    if isinstance(value, dict) and value:
        found: dict[tuple[str, ...], object] = {}
        for key, child in value.items():
            found |= leaves(child, (*path, key))
        return found
    return {path: value}


def at(value: object, path: tuple[str, ...]) -> object:
    for key in path:
        assert isinstance(value, dict)
        value = value[key]
    return value


class TestMergeModels:
    def test_given_values_win_and_placeholders_stay(self) -> None:
        suggested = {"name": "name_Value", "company": {"address": "address_Value"}, "items": [{"a": "a_Value"}]}
        given = {"name": "Ann", "company": {"city": "Oslo"}, "items": []}
        assert merge_models(suggested, given) == {"name": "Ann", "company": {"address": "address_Value", "city": "Oslo"}, "items": []}

    @given(st.dictionaries(st.sampled_from("abcd"), JSON, max_size=4), st.dictionaries(st.sampled_from("abcd"), JSON, max_size=4))
    def test_every_given_leaf_is_kept_and_untouched_keys_survive(self, suggested: dict[str, Any], given_model: dict[str, Any]) -> None:
        merged = merge_models(suggested, given_model)
        for path, value in leaves(given_model).items():
            if path and value == {}:
                assert isinstance(at(merged, path), dict)  # an empty object keeps the suggested keys under it
            elif path:
                assert at(merged, path) == value
        for key in suggested.keys() - given_model.keys():
            assert merged[key] == suggested[key]
        assert set(merged) == set(suggested) | set(given_model)


def draft(**overrides: Any) -> Draft:
    fields: dict[str, Any] = {
        "name": "n",
        "alias": "a",
        "template_type": TemplateType.STANDARD,
        "subject": "s",
        "html_body": "<p>{{ x }}</p>",
        "text_body": "{{ x }}",
        "layout_alias": None,
    }
    fields.update(overrides)
    return Draft(**fields)


class TestCheckDraft:
    def test_a_valid_standard_template_and_layout_pass(self) -> None:
        check_draft(draft())
        check_draft(draft(template_type=TemplateType.LAYOUT, subject=None, html_body="{{{ @content }}}", text_body=None))

    @pytest.mark.parametrize(
        ("overrides", "code"),
        [
            ({"name": ""}, 1120),
            ({"subject": None}, 1120),
            ({"html_body": None, "text_body": None}, 1120),
            ({"alias": "a" * 256}, 1121),
            ({"alias": "-a"}, 1122),
            ({"alias": "ä"}, 1122),
            ({"alias": "a\n"}, 1122),
            ({"text_body": "{{"}, 1122),
            ({"subject": "{{{ @content }}}"}, 1131),
            ({"alias": "a\x00"}, 403),
        ],
    )
    def test_rules(self, overrides: dict[str, Any], code: int) -> None:
        with pytest.raises(PostmarkError) as caught:
            check_draft(draft(**overrides))
        assert caught.value.error_code == code

    @pytest.mark.parametrize("alias", ["a", "Welcome-Email_2", "v1.2", "x" * 255])
    def test_valid_aliases(self, alias: str) -> None:
        check_draft(draft(alias=alias))

    def test_placeholder_rule(self) -> None:
        assert placeholder_problem(TemplateType.LAYOUT, "HtmlBody", 1) is None
        assert placeholder_problem(TemplateType.LAYOUT, "TextBody", 0)
        assert placeholder_problem(TemplateType.LAYOUT, "TextBody", 2)
        assert placeholder_problem(TemplateType.STANDARD, "HtmlBody", 0) is None
        assert placeholder_problem(TemplateType.STANDARD, "HtmlBody", 1)


class TestReference:
    @pytest.mark.parametrize(
        ("text", "template_id", "alias_key"),
        [
            ("42", 42, None),
            ("Welcome", None, "welcome"),
            ("a1", None, "a1"),
            ("99999999999999999999", 0, None),
            ("9" * 5000, 0, None),
            ("٣", None, "٣"),
        ],
    )
    def test_digits_are_an_id_anything_else_an_alias(self, text: str, template_id: int | None, alias_key: str | None) -> None:
        reference = Reference.parse(text)
        assert (reference.template_id, reference.alias_key) == (template_id, alias_key)
