"""The Mustachio engine: Postmark's documented examples, Mustachio's semantics, error positions, models, layouts."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.templates.mustachio import (
    CONTENT_NEEDS_THREE_BRACES,
    EACH_CLOSE_SYNTAX,
    EACH_NEEDS_PATH,
    EACH_NOT_OPEN,
    EMPTY_TAG,
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_MODEL_DEPTH,
    MAX_TAGS,
    TOO_DEEP,
    UNCLOSED_TAG,
    TemplateRenderError,
    TemplateSyntaxError,
    ValidationError,
    compile_template,
    content_placeholder_count,
    escape_html,
    format_double,
    parse_path,
    render_in_layout,
    suggested_model,
    validate,
)

RECEIPT = (Path(__file__).parent / "receipt.html").read_text()


def render(source: str, model: object, *, html: bool = True) -> str:
    return compile_template(source).render(model, html=html)


class TestPostmarkTemplateSyntaxArticle:
    """Examples from https://postmarkapp.com/support/article/1077-template-syntax."""

    def test_variable_interpolation_with_a_dotted_path(self) -> None:
        assert render("Hello {{ person.first_name }}", {"person": {"first_name": "Andrew"}}) == "Hello Andrew"

    def test_scoping_into_an_object(self) -> None:
        source = "{{#person}}\n  Hello {{first_name}}\n{{/person}}"
        assert render(source, {"person": {"first_name": "Andrew"}}) == "\n  Hello Andrew\n"

    def test_collection_handling(self) -> None:
        source = "{{ company_name }} Employees:\n<ul>\n{{#each employees}}\n  <li>{{ name }}</li>\n{{/each}}\n</ul>"
        model = {"company_name": "ACME Rockets, Inc.", "employees": [{"name": "Wile E. Coyote"}, {"name": "Road Runner"}]}
        # Tags keep their line breaks: Mustachio has no "standalone tag" trimming.
        assert render(source, model) == (
            "ACME Rockets, Inc. Employees:\n<ul>\n\n  <li>Wile E. Coyote</li>\n\n  <li>Road Runner</li>\n\n</ul>"
        )

    def test_reaching_up_from_an_each_takes_two_steps(self) -> None:
        # Inside `each` the element's parent is the list, so the model root is `../../`, as the article's example writes.
        source = "<ul>{{#each employees}}<li>{{ name }} works for: {{ ../../company_name }}</li>{{/each}}</ul>"
        model = {"company_name": "ACME Rockets, Inc.", "employees": [{"name": "Wile E. Coyote"}, {"name": "Road Runner"}]}
        assert render(source, model) == (
            "<ul><li>Wile E. Coyote works for: ACME Rockets, Inc.</li><li>Road Runner works for: ACME Rockets, Inc.</li></ul>"
        )

    def test_current_value_with_a_dot(self) -> None:
        assert render("{{#each tags}}[{{.}}]{{/each}}", {"tags": ["a", "b"]}) == "[a][b]"

    @pytest.mark.parametrize("value", [None, False, [], "", 0])
    def test_sections_are_skipped_for_missing_null_false_and_empty(self, value: object) -> None:
        assert render("{{#x}}shown{{/x}}", {"x": value}) == ""
        assert render("{{#x}}shown{{/x}}", {}) == ""

    def test_inverted_group_renders_when_the_value_is_absent(self) -> None:
        source = "{{^ employees}}No employees yet.{{/employees}}"
        assert render(source, {}) == "No employees yet."
        assert render(source, {"employees": [{"name": "x"}]}) == ""

    def test_double_braces_encode_html_and_triple_braces_do_not(self) -> None:
        model = {"snippet": "<b>Bold</b> & more"}
        assert render("{{ snippet }}", model) == "&lt;b&gt;Bold&lt;/b&gt; &amp; more"
        assert render("{{{ snippet }}}", model) == "<b>Bold</b> & more"
        assert render("{{& snippet }}", model) == "<b>Bold</b> & more"

    def test_unsubscribe_placeholder_is_kept_for_the_sending_step(self) -> None:
        assert render('<a href="{{{ pm:unsubscribe }}}">Unsubscribe</a>', {}) == '<a href="{{{ pm:unsubscribe }}}">Unsubscribe</a>'
        assert validate("{{{pm:unsubscribe}}}") == []

    def test_layout_placeholder(self) -> None:
        layout = compile_template("<header>{{ brand }}</header>{{{ @content }}}<footer/>")
        assert (
            render_in_layout(layout, content="<p>Hi</p>", model={"brand": "Acme"}, html=True) == "<header>Acme</header><p>Hi</p><footer/>"
        )


class TestPostmarkParentAndChildArticle:
    """Examples from https://postmarkapp.com/support/article/how-parent-and-child-variables-work-in-postmark-templates."""

    def test_looping_through_items(self) -> None:
        source = "<p>Hi {{name}}, here’s your order:</p>\n<ul>{{#each items}}<li>{{title}} – {{price}}</li>{{/each}}</ul>"
        model = {"name": "Ava", "items": [{"title": "Toothbrush", "price": "$2.50"}, {"title": "Towel", "price": "$7.00"}]}
        assert render(source, model) == ("<p>Hi Ava, here’s your order:</p>\n<ul><li>Toothbrush – $2.50</li><li>Towel – $7.00</li></ul>")

    def test_handlebars_if_and_else_are_not_mustachio(self) -> None:
        # The article also shows `{{#if items.length}}…{{else}}…{{/if}}`: Mustachio has no helpers, and says where.
        errors = validate("{{#if items.length}}\n<p>x</p>\n{{else}}\n<p>No items.</p>\n{{/if}}")
        # `{{else}}` is a plain value named "else"; `{{#if items.length}}` is an invalid path left open.
        assert [(e.line, e.character) for e in errors] == [(1, 1), (1, 1), (5, 1)]
        assert errors[0].message.startswith("The path 'if items.length' is not valid.")
        assert errors[1].message.startswith("A scope block to the following path was opened but not closed: 'if items.length'")

    def test_the_mustachio_way_to_show_an_empty_state(self) -> None:
        source = "{{#items}}{{#each .}}<p>{{title}}</p>{{/each}}{{/items}}{{^items}}<p>No items to display.</p>{{/items}}"
        assert render(source, {"items": []}) == "<p>No items to display.</p>"
        assert render(source, {"items": [{"title": "Towel"}]}) == "<p>Towel</p>"


class TestMustachioSemantics:
    """Behaviour from Mustachio's own fixtures (github wildbit/mustachio, TemplateFixture and ParserFixture)."""

    def test_content_without_tags_is_unchanged(self) -> None:
        assert render("ASDF", None) == "ASDF"

    def test_comments_are_dropped_even_across_lines(self) -> None:
        assert render("as{{!stu\n            ff}}df", {}) == "asdf"

    def test_section_scopes_into_an_object_and_names_do_not_resolve_outwards(self) -> None:
        model = {"company": "Acme", "person": {"name": "Ann"}}
        assert render("{{#person}}{{name}}@{{company}}|{{../company}}{{/person}}", model) == "Ann@|Acme"

    def test_section_over_a_list_scopes_into_the_list_without_looping(self) -> None:
        model = {"items": [{"title": "a"}, {"title": "b"}]}
        assert render("{{#items}}<{{title}}>{{/items}}", model) == "<>"
        assert render("{{#items}}{{#each .}}<{{title}}>{{/each}}{{/items}}", model) == "<a><b>"

    def test_each_over_a_complex_path_reaches_up_per_level(self) -> None:
        products = [{"name": f"name {k}", "version": f"version {k}"} for k in range(3)]
        model = {"Company": {"ceo": {"last_name": "Smith", "products": products}}}
        source = "{{#each Company.ceo.products}}<li>{{ name }} and {{version}} and has a CEO: {{../../last_name}}</li>{{/each}}"
        assert render(source, model) == "".join(f"<li>name {k} and version {k} and has a CEO: Smith</li>" for k in range(3))

    def test_inverted_group_scopes_into_the_missing_value(self) -> None:
        model = {"not_here": False, "placeholder": "a placeholder value"}
        assert render("{{^not_here}}{{../placeholder}}|{{placeholder}}{{/not_here}}", model) == "a placeholder value|"

    @pytest.mark.parametrize("value", [[], False, "", 0.0, 0, {}, None])
    def test_falsy_values_skip_sections_and_loops(self, value: object) -> None:
        model = {"outer_level": value}
        assert render("{{#outer_level}}Shouldn't be rendered!{{inner_level}}{{/outer_level}}", model) == ""
        assert render("{{#each outer_level}}Shouldn't be rendered!{{/each}}", model) == ""

    @pytest.mark.parametrize("value", [True, 1, -0.5, "0", "false", [0], {"a": None}])
    def test_truthy_values_open_sections(self, value: object) -> None:
        assert render("{{#x}}yes{{/x}}{{^x}}no{{/x}}", {"x": value}) == "yes"

    def test_else_by_reopening_the_same_name(self) -> None:
        for source in ("{{#c}}has{{^c}}has not{{/c}}", "{{^c}}has not{{#c}}has{{/c}}"):
            assert render(source, {"c": [1]}) == "has"
            assert render(source, {"c": []}) == "has not"

    @pytest.mark.parametrize(
        ("value", "printed"),
        [
            (0, "0"),
            (0.0, "0"),
            (False, "False"),
            (True, "True"),
            (None, ""),
            (18446744073709551615, "18446744073709551615"),
            (3.0, "3"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e14, "100000000000000"),
            (1e15, "1E+15"),
            (0.0001, "0.0001"),
            (0.00001, "1E-05"),
            (-2.5e-7, "-2.5E-07"),
            ({"a": 1}, ""),
            ([1, 2], ""),
        ],
    )
    def test_values_print_as_dotnet_prints_them(self, value: object, printed: str) -> None:
        assert render("You've won {{times_won}} times!", {"times_won": value}) == f"You've won {printed} times!"

    def test_an_integer_too_long_to_print_prints_nothing(self) -> None:
        # Past Python's int-to-text limit (4300 digits), where str() raises; no JSON number is that long.
        assert render("[{{n}}]", {"n": 10**5000}) == "[]"

    @pytest.mark.parametrize(
        ("source", "expected"),
        [("{{{{name}}", "{{Mike"), ("{{{name}}", "{Mike"), ("{{name}}}", "Mike}"), ("{{name}}}}", "Mike}}")],
    )
    def test_partial_open_and_close_braces_are_text(self, source: str, expected: str) -> None:
        assert render(source, {"name": "Mike"}) == expected

    def test_a_brace_right_before_a_tag_makes_it_a_triple_tag(self) -> None:
        assert render("{ {{name}}", {"name": "<b>"}) == "{ &lt;b&gt;"
        assert render("{{{name}}}", {"name": "<b>"}) == "<b>"
        assert [e.message for e in validate("{{#a}}{{{/a}}}")] == [
            "A scope block to the following path was opened but not closed: 'a', please close it using the appropriate syntax.",
            "The path '/a' is not valid. Please see documentation for examples of valid paths.",
        ]

    def test_whitespace_inside_braces_is_ignored(self) -> None:
        model = {"a": {"b": "<x>"}, "list": [1]}
        assert render("{{ a.b }}|{{{  a.b  }}}|{{&  a.b }}|{{# a }}{{  b }}{{/ a }}|{{#each   list  }}{{ . }}{{/ each }}", model) == (
            "&lt;x&gt;|<x>|<x>|&lt;x&gt;|1"
        )

    def test_this_is_the_current_value(self) -> None:
        model = {"people": [{"name": "Ann"}], "tags": ["x"]}
        assert render("{{#each people}}{{this.name}}{{/each}}{{#each tags}}{{this}}{{/each}}", model) == "Annx"

    def test_climbing_above_the_root_stays_at_the_root(self) -> None:
        assert render("{{../../../name}}", {"name": "root"}) == "root"

    def test_missing_values_along_a_path_render_empty(self) -> None:
        assert render("[{{a.b.c}}][{{#a.b}}x{{/a.b}}][{{#each a.b}}x{{/each}}]", {"a": "text"}) == "[][][]"

    @pytest.mark.parametrize("value", [{"k": "v"}, "text", 5, True])
    def test_each_over_a_value_that_is_not_a_list_renders_nothing(self, value: object) -> None:
        assert render("{{#each x}}item{{/each}}", {"x": value}) == ""

    @pytest.mark.parametrize("value", [{"k": "v"}, "text", 5, True])
    def test_strict_rendering_raises_where_mustachio_throws(self, value: object) -> None:
        template = compile_template("{{#each a.x}}item{{/each}}")
        with pytest.raises(TemplateRenderError, match=r"^'a\.x' is used like an array by the template"):
            template.render({"a": {"x": value}}, html=True, strict=True)
        with pytest.raises(TemplateRenderError):
            render_in_layout(template, content="", model={"a": {"x": value}}, html=False, strict=True)

    @pytest.mark.parametrize("value", [None, False, 0, "", {}, [], ["item"]])
    def test_strict_rendering_accepts_lists_and_false_values(self, value: object) -> None:
        assert compile_template("{{#each x}}{{.}}{{/each}}").render({"x": value}, html=True, strict=True) in ("", "item")

    def test_a_name_starting_with_each_is_a_plain_section(self) -> None:
        assert render("{{#each_item}}{{x}}{{/each_item}}", {"each_item": {"x": 1}}) == "1"

    def test_names_are_case_sensitive(self) -> None:
        assert render("{{Name}}|{{name}}", {"name": "n"}) == "|n"

    def test_text_bodies_and_subjects_are_not_encoded(self) -> None:
        assert render("{{ x }}", {"x": "<b> & 'é'"}, html=False) == "<b> & 'é'"

    def test_html_encoding_is_dotnet_htmlencode(self) -> None:
        assert (
            escape_html("<a href=\"x\">'é' & 😀 \ud800 ü</a>")
            == "&lt;a href=&quot;x&quot;&gt;&#39;&#233;&#39; &amp; &#128512; \ufffd &#252;&lt;/a&gt;"
        )
        assert escape_html("plain ascii, ÿ is 255 and Ā is 256") == "plain ascii, &#255; is 255 and Ā is 256"


class TestPaths:
    @pytest.mark.parametrize(
        ("text", "steps"),
        [
            ("first_name", ("first_name",)),
            ("company.address_line_1", ("company", "address_line_1")),
            ("../Person.Name", ("..", "Person", "Name")),
            ("../../x", ("..", "..", "x")),
            (".", ()),
            ("this", ()),
            ("this.name", ("name",)),
            ("../this", ("..",)),
            ("名前", ("名前",)),
        ],
    )
    def test_valid_paths(self, text: str, steps: tuple[str, ...]) -> None:
        assert parse_path(text) == steps

    @pytest.mark.parametrize(
        "text", [".../asdf.content", "/", "./", "..", "//", "@", "[", "]", ")", "(", "~", "$", "%", "a..b", "a/b", "first name", "@index"]
    )
    def test_invalid_paths(self, text: str) -> None:
        assert parse_path(text) is None
        assert len(validate("{{" + text + "}}")) == 1


class TestValidate:
    @pytest.mark.parametrize(
        ("source", "count"),
        [
            ("1{{first name}}", 1),
            ("ss{{#each company.name}}\nasdf", 1),
            ("xzyhj{{#company.address_line_1}}\nasdf{{dsadskl-sasa@}}\n{{/each}}", 3),
            ("fff{{#each company.address_line_1}}\n{{dsadskl-sasa@}}\n{{/each}}", 1),
            ("a{{name}}dd\ndd{{/each}}dd", 1),
            ("{{#Collection}}Collection has elements{{/AnotherCollection}}", 2),
            ("{{#ACollection}}{{.}}{{/each}}", 2),
            ("{{#ACollection}}{{.}}{{/ACollection}}{{/each}}", 1),
            ("{{/each}}", 1),
            ("{{#each}}", 1),
            ("{{#each element}}{{name}}", 1),
            ("{{#element}}{{name}}", 1),
            ("{{^element}}{{name}}", 1),
        ],
    )
    def test_error_counts_match_mustachio(self, source: str, count: int) -> None:
        assert len(validate(source)) == count

    def test_valid_templates_have_no_errors(self) -> None:
        for source in (
            "Hello {{Name}}!",
            "{{#content}}Hello {{../Person.Name}}!{{/content}}",
            "{{#each ACollection}}{{.}}{{/each}}",
            RECEIPT,
        ):
            assert validate(source) == []

    def test_positions_are_one_based_line_and_character(self) -> None:
        source = "Hello {{ name }},\n  {{#each}}\n\tthen {{/items}}\n{{#order}}\n{{ first name }}"
        assert validate(source) == [
            ValidationError(EACH_NEEDS_PATH, 2, 3),
            ValidationError("It appears that open and closing elements are mismatched. '{{/items}}' does not close any open block.", 3, 7),
            ValidationError(
                "A scope block to the following path was opened but not closed: 'order', please close it using the appropriate syntax.",
                4,
                1,
            ),
            ValidationError("The path 'first name' is not valid. Please see documentation for examples of valid paths.", 5, 1),
        ]

    def test_mismatched_close_names_both_blocks(self) -> None:
        assert validate("<p>\n{{#each rows}}{{/row}}{{/each}}") == [
            ValidationError("It appears that open and closing elements are mismatched. '{{/row}}' does not close '{{#each rows}}'.", 2, 15)
        ]

    @pytest.mark.parametrize(
        ("source", "message", "line", "character"),
        [
            ("Hi {{name", UNCLOSED_TAG, 1, 4),
            ("Hi\n{{ name }", UNCLOSED_TAG, 2, 1),
            ("a {{b{c}}", UNCLOSED_TAG, 1, 3),
            ("{{}}", EMPTY_TAG, 1, 1),
            ("x{{ }}", EMPTY_TAG, 1, 2),
            ("{{{ }}}", EMPTY_TAG, 1, 1),
            ("{{#}}{{/}}", EMPTY_TAG, 1, 1),
            ("{{/each items}}", EACH_CLOSE_SYNTAX, 1, 1),
            ("{{/each}}", EACH_NOT_OPEN, 1, 1),
            ("{{ @content }}", CONTENT_NEEDS_THREE_BRACES, 1, 1),
            ("{{ #each items }}", "The path '#each items' is not valid. Please see documentation for examples of valid paths.", 1, 1),
        ],
    )
    def test_broken_tags(self, source: str, message: str, line: int, character: int) -> None:
        assert validate(source)[0] == ValidationError(message, line, character)

    def test_character_counts_utf16_units_and_lines_split_on_newline(self) -> None:
        assert validate("😀é {{#a}}") == [ValidationError(validate("{{#a}}")[0].message, 1, 5)]
        assert validate("line one\r\n\r\n  {{}}") == [ValidationError(EMPTY_TAG, 3, 3)]

    def test_sections_nested_too_deep(self) -> None:
        ok = "{{#a}}{{#b}}" * (MAX_DEPTH // 2) + "{{/b}}{{/a}}" * (MAX_DEPTH // 2)
        assert validate(ok) == []
        too_deep = "{{#a}}{{#b}}" * (MAX_DEPTH // 2) + "{{#c}}{{/c}}" + "{{/b}}{{/a}}" * (MAX_DEPTH // 2)
        assert validate(too_deep) == [ValidationError(TOO_DEEP, 1, 6 * MAX_DEPTH + 1)]

    def test_errors_are_capped(self) -> None:
        errors = validate("{{a b}}\n" * (MAX_ERRORS + 50))
        assert len(errors) == MAX_ERRORS
        assert [e.line for e in errors] == list(range(1, MAX_ERRORS + 1))

    def test_compile_raises_the_first_error_and_keeps_all(self) -> None:
        with pytest.raises(TemplateSyntaxError) as raised:
            compile_template("ok\n{{#a}}{{/b}}")
        error = raised.value
        assert (error.message, error.line, error.character) == (error.errors[0].message, 2, 1)
        assert len(error.errors) == 2
        assert "line 2, character 1" in str(error)


class TestSuggestedModel:
    """Mustachio's InferredTemplateModel fixtures, and Postmark's `SuggestedTemplateModel` placeholders."""

    def test_scalar(self) -> None:
        assert suggested_model("{{Name}}") == {"Name": "Name_Value"}

    def test_no_tags_is_an_empty_object(self) -> None:
        assert suggested_model("This template has no mustache thingies.") == {}

    def test_nested_properties(self) -> None:
        assert suggested_model("{{#Person}}{{Name}}{{/Person}}") == {"Person": {"Name": "Name_Value"}}

    def test_collection_of_scalars_reached_through_the_parent(self) -> None:
        assert suggested_model("{{#Person}}{{Name}}{{#each ../Person.FavoriteColors}}{{.}}{{/each}}{{/Person}}") == {
            "Person": {"Name": "Name_Value", "FavoriteColors": ["FavoriteColors_1", "FavoriteColors_2", "FavoriteColors_3"]}
        }

    def test_collection_of_objects(self) -> None:
        assert suggested_model("{{#each Employees}}{{name}}{{/each}}") == {"Employees": [{"name": "name_Value"}]}

    def test_collection_sub_objects(self) -> None:
        source = "{{#each Employees}}{{person.name}}{{#each favoriteColors}}{{hue}}{{/each}}{{#each workplaces}}{{.}}{{/each}}{{/each}}"
        assert suggested_model(source) == {
            "Employees": [
                {
                    "person": {"name": "name_Value"},
                    "favoriteColors": [{"hue": "hue_Value"}],
                    "workplaces": ["workplaces_1", "workplaces_2", "workplaces_3"],
                }
            ]
        }

    def test_subject_html_and_text_merge(self) -> None:
        # The shape postmark-dotnet's live test (ClientCanValidateTemplate) expects back from Postmark.
        model = suggested_model(
            "{{name}}",
            "<html><body>{{content}}{{company.address}}{{#each products}}{{/each}}{{^competitors}}There are no substitutes.{{/competitors}}</body></html>",
            "{{content}}",
        )
        assert model == {
            "name": "name_Value",
            "content": "content_Value",
            "company": {"address": "address_Value"},
            "products": ["products_1", "products_2", "products_3"],
            "competitors": {},
        }

    def test_section_and_each_on_the_same_list(self) -> None:
        assert suggested_model("{{#items}}{{#each .}}{{title}}{{/each}}{{/items}}") == {"items": [{"title": "title_Value"}]}

    def test_reaching_up_from_an_each_is_inferred_where_rendering_looks(self) -> None:
        source = "{{#each shop.items}}[{{.}} from {{../../title}}]{{/each}}"
        model = suggested_model(source)
        assert model == {"shop": {"items": ["items_1", "items_2", "items_3"], "title": "title_Value"}}
        assert render(source, model) == "".join(f"[items_{i} from title_Value]" for i in (1, 2, 3))

    def test_parts_with_syntax_errors_add_nothing(self) -> None:
        assert suggested_model("{{#a}}{{b}}", "{{c}}") == {"c": "c_Value"}

    def test_receipt_model_fills_the_template(self) -> None:
        model = suggested_model("Receipt {{ receipt_id }}", RECEIPT)
        assert model == {
            "receipt_id": "receipt_id_Value",
            "store": {"name": "name_Value", "url": "url_Value", "address": "address_Value"},
            "purchase_date": "purchase_date_Value",
            "customer": {"first_name": "first_name_Value"},
            "statement_name": "statement_name_Value",
            "card": {"brand": "brand_Value", "last_four": "last_four_Value"},
            "discount": {"percent": "percent_Value", "code": "code_Value", "expires": "expires_Value"},
            "items": [{"description": "description_Value", "quantity": "quantity_Value", "amount": "amount_Value"}],
            "total": "total_Value",
            "support_url": "support_url_Value",
            "pdf_url": "pdf_url_Value",
            "billing_url": "billing_url_Value",
        }
        rendered = render(RECEIPT, model)
        assert "Hi first_name_Value," in rendered
        assert "description_Value &times; quantity_Value" in rendered
        assert "code_Value" in rendered

    def test_model_depth_is_capped(self) -> None:
        model = suggested_model("{{" + ".".join(["a"] * 1000) + "}}")
        depth = 0
        node: object = model
        while isinstance(node, dict) and node:
            node = node["a"]
            depth += 1
        assert depth == MAX_MODEL_DEPTH
        assert len(json.dumps(model)) < 1000

    def test_variables_exposes_the_shape(self) -> None:
        shape = compile_template("{{#each rows}}{{.}}{{/each}}{{user.name}}").variables()
        assert set(shape.children) == {"rows", "user"}
        assert shape.children["rows"].collection
        assert shape.children["user"].children["name"].scalar


class TestLayouts:
    def test_placeholder_count(self) -> None:
        assert content_placeholder_count("<body></body>") == 0
        assert content_placeholder_count("<body>{{{ @content }}}</body>") == 1
        assert content_placeholder_count("{{{@content}}}{{{  @content }}}") == 2
        assert content_placeholder_count("{{ @content }}") == 0
        assert content_placeholder_count("{{#a}}{{{ @content }}}") == 1  # counted even when the layout is invalid

    def test_content_is_inserted_raw_and_the_layout_is_rendered_with_the_model(self) -> None:
        layout = compile_template("<title>{{ subject }}</title><main>{{{ @content }}}</main>{{#footer}}<p>{{ text }}</p>{{/footer}}")
        content = render("<p>Hello {{ name }}</p>", {"name": "<Ann>"})
        model = {"subject": "A & B", "footer": {"text": "Bye"}}
        assert render_in_layout(layout, content=content, model=model, html=True) == (
            "<title>A &amp; B</title><main><p>Hello &lt;Ann&gt;</p></main><p>Bye</p>"
        )

    def test_text_layout(self) -> None:
        layout = compile_template("{{ brand }}\n---\n{{{ @content }}}\n---")
        assert render_in_layout(layout, content="Hi <Ann>", model={"brand": "A&B"}, html=False) == "A&B\n---\nHi <Ann>\n---"

    def test_placeholder_alone_renders_empty(self) -> None:
        assert render("[{{{ @content }}}]", {}) == "[]"

    def test_receipt_inside_a_layout(self) -> None:
        layout = compile_template("<html><body><div class='brand'>{{ store.name }}</div>{{{ @content }}}</body></html>")
        model = {"store": {"name": "Acme"}, "items": [{"description": "Pen", "quantity": 2, "amount": "$3"}]}
        out = render_in_layout(layout, content=render(RECEIPT, model), model=model, html=True)
        assert out.startswith("<html><body><div class='brand'>Acme</div><!DOCTYPE html>")
        assert "Pen &times; 2" in out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "c", "name", "items"]), inner, max_size=4),
    max_leaves=30,
)
ALL_CONSTRUCTS = [
    "{{a}}{{{b}}}{{&c}}{{a.b.c}}{{.}}{{this}}",
    "{{#a}}{{b}}{{../c}}{{^b}}{{../../name}}{{/b}}{{/a}}",
    "{{#each items}}{{.}}{{name}}{{../a}}{{#each .}}{{../../../b}}{{/each}}{{/each}}",
    "{{^a}}{{#c}}x{{^c}}y{{/c}}{{/a}}{{! comment }}",
    "{{#a}}{{#each .}}{{#each .}}{{a.b}}{{/each}}{{/each}}{{/a}}",
]


@st.composite
def valid_templates(draw: st.DrawFn, depth: int = 0, parent: str | None = None) -> str:
    """Templates built from the grammar. A section never sits directly in one of the same name (that is Mustachio's else)."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        if depth < 4 and draw(st.booleans()):
            kind = draw(st.sampled_from(["#", "^", "#each "]))
            name = draw(st.sampled_from([n for n in ("a", "b.c", "../x", ".") if kind == "#each " or n != parent]))
            body = draw(valid_templates(depth + 1, None if kind == "#each " else name))
            parts.append(f"{{{{{kind}{name}}}}}{body}{{{{/{'each' if kind == '#each ' else name}}}}}")
        else:
            parts.append(draw(st.sampled_from(["{{a}}", "{{{ b.c }}}", "{{& ../d }}", "{ text", "}", "{{.}}", "{{! note }}", "{{this}}"])))
    return "".join(parts)


TEMPLATE_TEXT = st.text(alphabet=st.sampled_from(list("{}#^/&!. \nab@_😀é")), max_size=80)


class TestProperties:
    @given(st.text())
    def test_html_mode_never_leaves_a_value_unescaped(self, value: str) -> None:
        out = render("{{x}}", {"x": value})
        assert out == escape_html(value)
        assert not set(out) & set("<>\"'")
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in value):  # .NET turns a lone surrogate into U+FFFD
            # The same text as the standard library's escaping; only the spelling of some references differs.
            assert html.unescape(out) == value == html.unescape(html.escape(value))

    @given(st.text())
    def test_text_mode_and_triple_braces_leave_values_untouched(self, value: str) -> None:
        assert render("{{x}}", {"x": value}, html=False) == value
        assert render("{{{x}}}|{{&x}}", {"x": value}) == f"{value}|{value}"

    @given(st.sampled_from(ALL_CONSTRUCTS), JSON, st.booleans())
    def test_rendering_never_raises_on_any_model(self, source: str, model: object, as_html: bool) -> None:
        assert isinstance(render(source, model, html=as_html), str)

    @given(TEMPLATE_TEXT | st.text(max_size=200))
    def test_validate_never_raises_and_agrees_with_compile(self, source: str) -> None:
        errors = validate(source)
        assert len(errors) <= MAX_ERRORS
        assert all(e.line >= 1 and e.character >= 1 for e in errors)
        assert errors == sorted(errors, key=lambda e: (e.line, e.character))
        if errors:
            with pytest.raises(TemplateSyntaxError) as raised:
                compile_template(source)
            assert raised.value.errors == errors
        else:
            compiled = compile_template(source)
            assert isinstance(compiled.render({}, html=True), str)
        assert content_placeholder_count(source) >= 0
        assert isinstance(suggested_model(source), dict)

    @given(st.text().filter(lambda s: "{{" not in s))
    def test_text_without_tags_renders_as_itself(self, source: str) -> None:
        assert validate(source) == []
        assert render(source, {"x": 1}) == source

    @settings(max_examples=300)
    @given(st.floats(allow_nan=False, allow_infinity=False))
    def test_printed_floats_round_trip(self, value: float) -> None:
        assert float(format_double(value)) == value

    @given(valid_templates())
    def test_generated_valid_templates_validate_and_render(self, source: str) -> None:
        assert validate(source) == []
        assert isinstance(render(source, {"a": [{"b": {"c": 1}}], "b": {"c": True}, "x": "y"}), str)


class TestHostileInput:
    """Finishes (pytest-timeout bounds the run) and stays correct; the scanner never backtracks."""

    def test_a_hundred_thousand_open_sections(self) -> None:
        errors = validate("{{#a}}" * 100_000)
        # Mustachio re-opens a block of the same name in place, so this is one long flat block; parsing stops at MAX_TAGS.
        assert errors == [
            ValidationError(
                "A scope block to the following path was opened but not closed: 'a', please close it using the appropriate syntax.", 1, 1
            ),
            ValidationError(
                f"The template has more than {MAX_TAGS:,} tags: split it, or move repeated content into a loop.", 1, MAX_TAGS * 6 + 1
            ),
        ]

    def test_deeply_nested_sections(self) -> None:
        errors = validate("{{#a}}{{#b}}" * 50_000)
        assert len(errors) == MAX_ERRORS
        assert errors[0].character == 1

    @pytest.mark.parametrize(
        "source",
        ["{{" * 200_000, "{" * 1_000_000, "{{a" * 200_000, "}}" * 200_000, "{{{" + "a" * 1_000_000, "{{a}" * 200_000, "{{!" * 200_000],
    )
    def test_brace_floods(self, source: str) -> None:
        assert len(validate(source)) <= MAX_ERRORS

    def test_long_paths_and_many_tags_render(self) -> None:
        source = "{{" + ".".join(["a"] * 100_000) + "}}" + "{{a}}" * (MAX_TAGS - 1)
        assert render(source, {"a": "x"}) == "x" * (MAX_TAGS - 1)
