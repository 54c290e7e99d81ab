"""The template pages over the in-process app: list, create, edit, delete, the live preview through the
validate function, and push; every change is read back through the Templates API."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import Console
from tests.factories import create_layout, create_server, create_template

pytestmark = pytest.mark.asyncio

LAYOUT = {
    "type": "Layout",
    "name": "Base",
    "alias": "base",
    "html_body": "<html><body><header>{{ brand }}</header>{{{ @content }}}</body></html>",
    "text_body": "{{ brand }}\n{{{ @content }}}",
}
WELCOME = {
    "type": "Standard",
    "name": "Welcome",
    "alias": "welcome",
    "subject": "Hi {{ name }}",
    "html_body": "<p>Hello {{ name }}</p>",
    "text_body": "Hello {{ name }}",
    "layout": "base",
}


def templates_url(server_id: int, page: str = "") -> str:
    return f"/console/servers/{server_id}/templates" + (f"/{page}" if page else "")


def between(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


class TestTemplatesPage:
    async def test_create_a_layout_and_a_template_in_it_as_the_api_sees_them(self, console: Console) -> None:
        server = await create_server(console.client)
        assert "New layout" in (await console.get(templates_url(server.id, "new"), type="Layout")).text
        layout = await console.post(templates_url(server.id), LAYOUT)
        assert layout.status_code == 303
        layout_page = layout.headers["location"]
        assert re.fullmatch(r"/console/servers/\d+/templates/\d+\?notice=layout-added", layout_page)
        created = await console.post(templates_url(server.id), WELCOME)
        assert created.headers["location"].endswith("?notice=template-added")

        api = (await console.client.get("/templates/welcome", headers=server.headers)).json()
        assert (api["Name"], api["Subject"], api["HtmlBody"], api["TextBody"]) == (
            "Welcome",
            "Hi {{ name }}",
            "<p>Hello {{ name }}</p>",
            "Hello {{ name }}",
        )
        assert (api["TemplateType"], api["LayoutTemplate"]) == ("Standard", "base")
        assert (await console.client.get("/templates/base", headers=server.headers)).json()["TemplateType"] == "Layout"

        used_by = between((await console.get(layout_page.split("?")[0])).text, 'id="used-by"', "</section>")
        assert "Welcome" in used_by
        listing = (await console.get(templates_url(server.id))).text
        assert "Welcome" in listing
        assert "Base" in listing
        layouts_only = (await console.get(templates_url(server.id), type="layout")).text
        assert ">Base</a>" in layouts_only
        assert ">Welcome</a>" not in layouts_only
        standard_only = (await console.get(templates_url(server.id), type="standard")).text
        assert ">Base</a>" not in standard_only

    async def test_a_layout_without_an_alias_gets_the_services_alias(self, console: Console) -> None:
        server = await create_server(console.client)
        await console.post(templates_url(server.id), {**LAYOUT, "alias": "", "name": "Brand Frame"})
        [layout] = (await console.client.get("/templates?count=10&offset=0", headers=server.headers)).json()["Templates"]
        assert layout["Alias"] == "brand-frame"

    async def test_edit_changes_what_the_api_returns(self, console: Console) -> None:
        server = await create_server(console.client)
        template_id = (await create_template(console.client, server, Alias="welcome"))["TemplateId"]
        page = (await console.get(templates_url(server.id, str(template_id)))).text
        assert 'value="Hi {{ name }}"' in page
        assert "&#34;name&#34;: &#34;name_Value&#34;" in page  # the test model starts as the suggested model
        saved = await console.post(
            templates_url(server.id, str(template_id)),
            {"name": "Welcome v2", "alias": "welcome", "subject": "Welcome, {{ name }}", "html_body": "", "text_body": "Plain {{ name }}"},
        )
        assert saved.headers["location"].endswith(f"/templates/{template_id}?notice=saved")
        api = (await console.client.get(f"/templates/{template_id}", headers=server.headers)).json()
        assert (api["Name"], api["Subject"], api["HtmlBody"], api["TextBody"]) == (
            "Welcome v2",
            "Welcome, {{ name }}",
            None,
            "Plain {{ name }}",
        )

    async def test_refusals_show_the_services_message_keep_the_input_and_change_nothing(self, console: Console) -> None:
        server = await create_server(console.client)
        template_id = (await create_template(console.client, server, Alias="welcome"))["TemplateId"]
        broken = "<p>\n  {{#each items}}</p>"
        refused = await console.post(
            templates_url(server.id, str(template_id)), {"name": "Welcome", "subject": "Hi", "html_body": broken, "text_body": ""}
        )
        assert refused.status_code == 422
        assert "The &#39;HtmlBody&#39; is not a valid template" in refused.text
        assert "line 2, character 3" in refused.text
        assert "&lt;p&gt;\n  {{#each items}}&lt;/p&gt;</textarea>" in refused.text
        assert 'id="errors-html_body"' in refused.text
        assert "Line 2, character 3:" in between(refused.text, 'id="errors-html_body"', "</div>")
        api = (await console.client.get(f"/templates/{template_id}", headers=server.headers)).json()
        assert api["HtmlBody"] == "<p>Hi {{ name }}</p>"

        taken = await console.post(templates_url(server.id), {**WELCOME, "layout": "", "name": "Other"})
        assert taken.status_code == 422
        assert "The &#39;Alias&#39; &#39;welcome&#39; is already used by template" in taken.text
        assert 'value="Other"' in taken.text
        no_layout = await console.post(templates_url(server.id), {**WELCOME, "alias": "w2", "layout": "missing"})
        assert no_layout.status_code == 422
        assert "is not the alias of a Layout on this server" in no_layout.text
        total = (await console.client.get("/templates?count=10&offset=0", headers=server.headers)).json()["TotalCount"]
        assert total == 1

    async def test_a_layout_in_use_cannot_be_deleted_until_its_templates_go(self, console: Console) -> None:
        server = await create_server(console.client)
        layout_id = (await create_layout(console.client, server))["TemplateId"]
        template_id = (await create_template(console.client, server, LayoutTemplate="base"))["TemplateId"]
        refused = await console.post(templates_url(server.id, f"{layout_id}/delete"))
        assert refused.status_code == 422
        assert "The layout template cannot be deleted because it has dependent templates (1)" in refused.text
        assert "Welcome" in between(refused.text, 'id="used-by"', "</section>")
        assert (await console.client.get("/templates/base", headers=server.headers)).status_code == 200

        deleted = await console.post(templates_url(server.id, f"{template_id}/delete"))
        assert deleted.headers["location"] == f"{templates_url(server.id)}?notice=template-deleted"
        assert (await console.client.get(f"/templates/{template_id}", headers=server.headers)).json()["Active"] is False
        assert (await console.post(templates_url(server.id, f"{layout_id}/delete"))).status_code == 303
        assert (await console.client.get("/templates/base", headers=server.headers)).status_code == 404
        assert (await console.get(templates_url(server.id, str(layout_id)))).status_code == 404

    async def test_a_body_larger_than_a_default_form_field_is_saved(self, console: Console) -> None:
        server = await create_server(console.client)
        body = "<p>" + "é" * 1_500_000 + "</p>"
        created = await console.post(templates_url(server.id), {**WELCOME, "layout": "", "html_body": body})
        assert created.status_code == 303, created.text[:500]
        assert (await console.client.get("/templates/welcome", headers=server.headers)).json()["HtmlBody"] == body

    async def test_unknown_or_malformed_template_ids_are_404_pages(self, console: Console) -> None:
        server = await create_server(console.client)
        other = await create_server(console.client, "Other")
        elsewhere = (await create_template(console.client, other))["TemplateId"]
        for page in ("999999", "abc", str(elsewhere), f"{elsewhere}/preview.html"):
            response = await console.get(templates_url(server.id, page))
            assert response.status_code == 404, page
            assert "text/html" in response.headers["content-type"]

    async def test_forms_without_the_csrf_token_are_refused(self, console: Console) -> None:
        server = await create_server(console.client)
        template_id = (await create_template(console.client, server))["TemplateId"]
        for path in ("", "preview", "preview.html", "push", str(template_id), f"{template_id}/delete"):
            response = await console.client.post(templates_url(server.id, path), data={**WELCOME, "destination": str(server.id)})
            assert response.status_code == 403, path
        assert (await console.client.get(f"/templates/{template_id}", headers=server.headers)).json()["Active"] is True


class TestLivePreview:
    async def test_check_lists_errors_by_field_with_line_and_character(self, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.post(
            templates_url(server.id, "preview"),
            {"type": "Standard", "subject": "Hi {{ name", "html_body": "<p>ok</p>\n<p>{{#if x}}</p>", "text_body": "Fine {{ name }}"},
        )
        assert response.status_code == 200
        panel = between(response.text, 'id="template-preview"', "</section>")
        assert "Has errors" in panel
        assert re.search(r"<strong>Subject</strong>, line 1, character \d+: ", panel)
        assert re.search(r"<strong>HTML body</strong>, line 2, character 4: ", panel)
        assert 'data-preview-submit="template-html-preview"' in panel
        assert "load" not in re.search(r'hx-trigger="([^"]+)"', panel).group(1)  # type: ignore[union-attr]
        subject_errors = between(response.text, 'id="errors-subject"', "</div>")
        assert 'hx-swap-oob="true"' in subject_errors
        assert "Line 1, character" in subject_errors
        assert "Line 2, character 4:" in between(response.text, 'id="errors-html_body"', "</div>")
        assert "Line" not in between(response.text, 'id="errors-text_body"', "</div>")
        assert "Fine name_Value" in panel

    async def test_check_renders_subject_and_text_with_the_test_model_inside_the_layout(self, console: Console) -> None:
        server = await create_server(console.client)
        await create_layout(console.client, server)
        response = await console.post(
            templates_url(server.id, "preview"),
            {**WELCOME, "text_body": "Hello {{ name }} <b>", "test_model": '{"name": "Ann & Bob", "brand": "Acme"}'},
        )
        panel = between(response.text, 'id="template-preview"', "</section>")
        assert "Valid" in panel
        assert '<dd class="strong">Hi Ann &amp; Bob</dd>' in panel
        assert '<pre class="body-text">Acme\nHello Ann &amp; Bob &lt;b&gt;</pre>' in panel
        assert "Hello Ann" not in panel.replace("Hello Ann &amp; Bob &lt;b&gt;", "")  # the HTML body is not in the page

    async def test_a_test_model_that_is_not_a_json_object_is_explained(self, console: Console) -> None:
        server = await create_server(console.client)
        url = templates_url(server.id, "preview")
        bad = await console.post(url, {**WELCOME, "layout": "", "test_model": '{"name": '})
        assert "The test model is not valid JSON: Expecting value (line 1, column 10)." in between(
            bad.text, 'id="errors-test-model"', "</div>"
        )
        listed = await console.post(url, {**WELCOME, "layout": "", "test_model": "[1, 2]"})
        assert "The test model must be a JSON object" in listed.text
        deep = await console.post(url, {**WELCOME, "layout": "", "test_model": "[" * 100_000})
        assert deep.status_code == 200
        assert "The test model" in deep.text

    async def test_put_in_the_test_model_fills_it_from_the_suggested_model(self, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.post(
            templates_url(server.id, "preview"),
            {**WELCOME, "layout": "", "subject": "{{ greeting }} {{ name }}", "test_model": '{"name": "Ann"}', "fill_model": "1"},
        )
        field = between(response.text, 'id="test-model-field"', "</label>")
        assert 'hx-swap-oob="true"' in field
        assert "&#34;greeting&#34;: &#34;greeting_Value&#34;" in field
        assert "&#34;name&#34;: &#34;Ann&#34;" in field

    async def test_an_unknown_layout_or_nothing_to_check_is_said_in_the_panel(self, console: Console) -> None:
        server = await create_server(console.client)
        unknown = await console.post(templates_url(server.id, "preview"), {**WELCOME, "layout": "nope"})
        assert "is not the alias of a Layout on this server" in unknown.text
        empty = await console.post(templates_url(server.id, "preview"), {"type": "Standard"})
        assert "Type a subject or a body to see it rendered." in empty.text

    async def test_html_is_served_only_to_the_sandboxed_frame_with_its_own_policy(self, console: Console) -> None:
        server = await create_server(console.client)
        fields = {
            **WELCOME,
            "layout": "",
            "html_body": "<p>Hello {{ name }}</p><script>alert(1)</script><img src='https://tracker.example/p.gif'>",
            "test_model": '{"name": "Ann"}',
        }
        frame = await console.post(templates_url(server.id, "preview.html"), fields)
        assert frame.status_code == 200
        assert "<p>Hello Ann</p><script>alert(1)</script>" in frame.text
        csp = frame.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "sandbox" in csp
        assert "script-src" not in csp
        assert "https:" not in csp
        assert frame.headers["x-frame-options"] == "SAMEORIGIN"
        assert frame.headers["referrer-policy"] == "no-referrer"
        with_images = await console.post(templates_url(server.id, "preview.html"), {**fields, "images": "on"})
        assert "img-src data: cid: http: https:" in with_images.headers["content-security-policy"]
        check = await console.post(templates_url(server.id, "preview"), fields)
        assert "<script>alert(1)</script>" not in check.text
        assert "<p>Hello Ann</p>" not in check.text
        assert "&lt;p&gt;Hello Ann" not in check.text
        assert '<pre class="body-text">Hello Ann</pre>' in check.text  # the text body, escaped, is shown

    async def test_the_editor_frames_the_saved_rendering_and_posts_drafts_into_the_frame(self, console: Console) -> None:
        server = await create_server(console.client)
        template_id = (await create_template(console.client, server, HtmlBody="<h1>Hi {{ name }}</h1>"))["TemplateId"]
        page = (await console.get(templates_url(server.id, str(template_id)))).text
        src = f"{templates_url(server.id, str(template_id))}/preview.html"
        assert re.search(
            rf'<iframe name="template-html" class="preview preview-short" sandbox title="[^"]+" referrerpolicy="no-referrer" src="{src}">',
            page,
        )
        assert "<h1>Hi" not in page
        stored = await console.get(src)
        assert stored.text == "<h1>Hi name_Value</h1>"
        assert "sandbox" in stored.headers["content-security-policy"]
        assert 'formaction="/console/servers/' in page
        assert 'formtarget="template-html" formnovalidate' in page
        new = (await console.get(templates_url(server.id, "new"))).text
        assert re.search(r'hx-trigger="input delay:400ms from:#template-form, load"', new)
        no_html = await console.post(templates_url(server.id, "preview.html"), {**WELCOME, "layout": "", "html_body": ""})
        assert "This template has no HTML body." in no_html.text


class TestPush:
    async def test_dry_run_shows_the_changes_then_apply_copies_them(self, console: Console) -> None:
        source = await create_server(console.client, "Staging")
        destination = await create_server(console.client, "Production")
        await create_layout(console.client, source)
        await create_template(console.client, source, Alias="welcome", LayoutTemplate="base")
        await create_template(console.client, source, Name="No alias")
        url = templates_url(source.id, "push")
        dry = await console.post(url, {"destination": str(destination.id)})
        assert dry.status_code == 200
        plan = between(dry.text, 'id="push-plan"', "</section>")
        assert "Copying to Production" in plan
        assert plan.count(">Create<") == 2
        assert "Apply 2 changes" in plan
        assert (await console.client.get("/templates?count=10&offset=0", headers=destination.headers)).json()["TotalCount"] == 0
        applied = await console.post(url, {"destination": str(destination.id), "apply": "1"})
        assert applied.headers["location"] == f"{templates_url(destination.id)}?notice=templates-pushed"
        copied = (await console.client.get("/templates?count=10&offset=0", headers=destination.headers)).json()["Templates"]
        assert sorted(t["Alias"] for t in copied) == ["base", "welcome"]
        again = await console.post(url, {"destination": str(destination.id)})
        assert "Nothing to change: Production has the same templates." in again.text

    async def test_refusals_are_explained(self, console: Console) -> None:
        source = await create_server(console.client, "Empty")
        destination = await create_server(console.client, "Other")
        nothing = await console.post(templates_url(source.id, "push"), {"destination": str(destination.id)})
        assert nothing.status_code == 422
        assert "There are no templates with an alias on the source server to push." in nothing.text
        missing = await console.post(templates_url(source.id, "push"), {"destination": ""})
        assert missing.status_code == 422
        assert "Choose the server to copy the templates to." in missing.text


async def test_templates_pages_send_the_console_headers(console: Console) -> None:
    server = await create_server(console.client)
    template_id = (await create_template(console.client, server))["TemplateId"]
    for page in ("", "new", str(template_id)):
        response = await console.get(templates_url(server.id, page))
        assert response.status_code == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
