"""The Templates API over HTTP: create, get, edit, delete, list, validate and push, with every ErrorCode it answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from shared.constants import MAX_TEMPLATES_PER_SERVER
from tests.factories import ACCOUNT, ServerHandle, create_layout, create_server, create_template

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await create_server(client)


def assert_error(response: httpx.Response, code: int, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ErrorCode"] == code, body
    assert response.headers["X-PM-ApiErrorCode"] == str(code)
    return body


class TestCreateAndGet:
    async def test_create_returns_the_summary_and_get_returns_the_content(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias="welcome")
        assert set(created) == {"TemplateId", "Name", "Active", "Alias", "TemplateType", "LayoutTemplate"}
        assert created["Active"] is True
        assert created["TemplateType"] == "Standard"
        assert created["LayoutTemplate"] is None
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert got == {
            "TemplateId": created["TemplateId"],
            "Name": "Welcome",
            "Subject": "Hi {{ name }}",
            "HtmlBody": "<p>Hi {{ name }}</p>",
            "TextBody": "Hi {{ name }}",
            "AssociatedServerId": server.id,
            "Active": True,
            "Alias": "welcome",
            "TemplateType": "Standard",
            "LayoutTemplate": None,
        }

    async def test_get_by_alias_ignores_case(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias="Password-Reset")
        got = await client.get("/templates/PASSWORD-reset", headers=server.headers)
        assert got.status_code == 200
        assert got.json()["TemplateId"] == created["TemplateId"]
        assert got.json()["Alias"] == "Password-Reset"

    async def test_a_standard_template_without_alias_keeps_none(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias=None)
        assert created["Alias"] is None

    async def test_a_layout_without_alias_gets_one_from_its_name(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        first = await create_layout(client, server, alias=None, Name="Brand Layout")
        second = await create_layout(client, server, alias=None, Name="Brand Layout")
        assert first["Alias"] == "brand-layout"
        assert second["Alias"] == "brand-layout-2"
        assert first["TemplateType"] == "Layout"

    async def test_a_template_uses_a_layout_by_alias(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_layout(client, server, alias="Base")
        created = await create_template(client, server, LayoutTemplate="base")
        assert created["LayoutTemplate"] == "Base"

    async def test_aliases_that_are_also_route_names(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        validate = await create_template(client, server, Alias="validate")
        push = await create_template(client, server, Alias="push")
        assert (await client.get("/templates/validate", headers=server.headers)).json()["TemplateId"] == validate["TemplateId"]
        assert (await client.put("/templates/validate", json={"Name": "v"}, headers=server.headers)).json()["Name"] == "v"
        assert (await client.get("/templates/push", headers=server.headers)).json()["TemplateId"] == push["TemplateId"]
        assert_error(await client.put("/templates/push", json={"Name": "p"}, headers=server.headers), 10, 401)  # that is the push
        assert (await client.put(f"/templates/{push['TemplateId']}", json={"Name": "p"}, headers=server.headers)).status_code == 200

    async def test_templates_of_another_server_are_not_found(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_server(client, "Other")
        created = await create_template(client, other, Alias="theirs")
        assert_error(await client.get(f"/templates/{created['TemplateId']}", headers=server.headers), 1101, 404)
        assert_error(await client.get("/templates/theirs", headers=server.headers), 1101, 404)

    async def test_an_id_too_large_for_the_database_is_not_found(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert_error(await client.get("/templates/99999999999999999999999", headers=server.headers), 1101, 404)

    async def test_the_server_token_is_required(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/templates?count=10&offset=0"), 10, 401)
        assert_error(await client.post("/templates", json={"Name": "x"}, headers=ACCOUNT), 10, 401)

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"Name": None}, 1120),
            ({"Name": "   "}, 1120),
            ({"Subject": None}, 1120),
            ({"HtmlBody": None, "TextBody": None}, 1120),
            ({"Name": "n" * 256}, 1121),
            ({"Subject": "s" * 2001}, 1121),
            ({"TextBody": "x" * (5 * 1024 * 1024 + 1)}, 1121),
            ({"Alias": "a" * 256}, 1121),
            ({"Alias": "1st"}, 1122),
            ({"Alias": "with space"}, 1122),
            ({"TemplateType": "Fancy"}, 1122),
            ({"HtmlBody": "<p>{{#each items}}{{ name }}</p>"}, 1122),
            ({"Subject": "Hi {{ name"}, 1122),
            ({"LayoutTemplate": "missing"}, 1101),
            ({"HtmlBody": "<p>{{{ @content }}}</p>"}, 1131),
            ({"TextBody": "nul\x00"}, 403),
        ],
    )
    async def test_invalid_template_is_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, fields: dict[str, Any], code: int
    ) -> None:
        body: dict[str, Any] = {"Name": "Welcome", "Subject": "Hi", "HtmlBody": "<p>Hi</p>", "TextBody": "Hi"} | fields
        assert_error(await client.post("/templates", json=body, headers=server.headers), code)
        assert (await client.get("/templates?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0

    async def test_an_empty_create_is_1109(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert_error(await client.post("/templates", json={}, headers=server.headers), 1109)
        assert_error(await client.post("/templates", json={"Name": None, "Alias": None}, headers=server.headers), 1109)

    async def test_syntax_error_names_the_part_and_position(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = {"Name": "x", "Subject": "Hi", "HtmlBody": "<p>\n  {{#each items}}</p>"}
        error = assert_error(await client.post("/templates", json=body, headers=server.headers), 1122)
        assert "'HtmlBody'" in error["Message"]
        assert "line 2, character 3" in error["Message"]

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"Subject": "Hello"}, 1123),
            ({"LayoutTemplate": "other"}, 1123),
            ({"HtmlBody": "<html>no placeholder</html>"}, 1131),
            ({"TextBody": "{{{ @content }}} and {{{ @content }}}"}, 1131),
        ],
    )
    async def test_invalid_layout_is_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, fields: dict[str, Any], code: int
    ) -> None:
        body: dict[str, Any] = {"Name": "Layout", "TemplateType": "Layout", "HtmlBody": "{{{ @content }}}", "TextBody": "{{{ @content }}}"}
        assert_error(await client.post("/templates", json=body | fields, headers=server.headers), code)

    async def test_a_layout_may_have_one_body(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_layout(client, server, TextBody=None)
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert got["TextBody"] is None
        assert got["Subject"] is None

    async def test_a_standard_template_cannot_use_another_standard_template_as_layout(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        await create_template(client, server, Alias="plain")
        assert_error(
            await client.post(
                "/templates", json={"Name": "x", "Subject": "s", "TextBody": "t", "LayoutTemplate": "plain"}, headers=server.headers
            ),
            1101,
        )

    async def test_alias_is_unique_per_server_without_case(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_template(client, server, Alias="welcome")
        assert_error(
            await client.post(
                "/templates", json={"Name": "x", "Subject": "s", "TextBody": "t", "Alias": "WELCOME"}, headers=server.headers
            ),
            1122,
        )
        other = await create_server(client, "Other")
        await create_template(client, other, Alias="welcome")

    async def test_a_server_holds_at_most_100_templates(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        ids = [(await create_template(client, server, Name=f"t{i}"))["TemplateId"] for i in range(MAX_TEMPLATES_PER_SERVER)]
        error = assert_error(
            await client.post("/templates", json={"Name": "x", "Subject": "s", "TextBody": "t"}, headers=server.headers), 1105
        )
        assert "100" in error["Message"]
        assert (await client.delete(f"/templates/{ids[0]}", headers=server.headers)).status_code == 200
        await create_template(client, server, Name="one more")


class TestEdit:
    async def test_edit_replaces_given_fields_and_keeps_the_rest(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias="welcome")
        edited = await client.put(
            "/templates/welcome", json={"Name": "Hello", "Subject": None, "TextBody": "Yo {{ name }}"}, headers=server.headers
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["Name"] == "Hello"
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert (got["Name"], got["Subject"], got["HtmlBody"], got["TextBody"]) == (
            "Hello",
            "Hi {{ name }}",
            "<p>Hi {{ name }}</p>",
            "Yo {{ name }}",
        )

    async def test_empty_string_clears_a_body_alias_and_layout(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_layout(client, server)
        created = await create_template(client, server, Alias="welcome", LayoutTemplate="base")
        edited = await client.put(
            f"/templates/{created['TemplateId']}", json={"HtmlBody": "", "Alias": "", "LayoutTemplate": ""}, headers=server.headers
        )
        assert edited.json()["Alias"] is None
        assert edited.json()["LayoutTemplate"] is None
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert got["HtmlBody"] is None
        assert got["TextBody"] == "Hi {{ name }}"

    async def test_renaming_a_layout_alias_keeps_its_templates(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        layout = await create_layout(client, server)
        created = await create_template(client, server, LayoutTemplate="base")
        await client.put(f"/templates/{layout['TemplateId']}", json={"Alias": "brand"}, headers=server.headers)
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert got["LayoutTemplate"] == "brand"

    async def test_an_edit_with_no_data_is_1109(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server)
        assert_error(await client.put(f"/templates/{created['TemplateId']}", json={}, headers=server.headers), 1109)
        assert_error(
            await client.put(f"/templates/{created['TemplateId']}", json={"Name": None, "Alias": None}, headers=server.headers), 1109
        )

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"TemplateType": "Layout"}, 1123),
            ({"HtmlBody": "", "TextBody": ""}, 1120),
            ({"Subject": ""}, 1120),
            ({"Name": ""}, 1120),
            ({"TextBody": "{{^x}}"}, 1122),
            ({"LayoutTemplate": "nope"}, 1101),
        ],
    )
    async def test_an_edit_that_breaks_a_rule_changes_nothing(
        self, client: httpx.AsyncClient, server: ServerHandle, fields: dict[str, Any], code: int
    ) -> None:
        created = await create_template(client, server)
        assert_error(await client.put(f"/templates/{created['TemplateId']}", json=fields, headers=server.headers), code)
        got = (await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)).json()
        assert got["TextBody"] == "Hi {{ name }}"
        assert got["Subject"] == "Hi {{ name }}"

    async def test_a_layout_keeps_its_placeholder_and_its_alias(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        layout = await create_layout(client, server)
        assert_error(await client.put(f"/templates/{layout['TemplateId']}", json={"HtmlBody": "<p>gone</p>"}, headers=server.headers), 1131)
        assert_error(await client.put(f"/templates/{layout['TemplateId']}", json={"Alias": ""}, headers=server.headers), 1120)
        assert_error(await client.put(f"/templates/{layout['TemplateId']}", json={"Subject": "S"}, headers=server.headers), 1123)

    async def test_the_same_template_type_may_be_sent_again(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server)
        edited = await client.put(
            f"/templates/{created['TemplateId']}", json={"TemplateType": "standard", "Name": "n"}, headers=server.headers
        )
        assert edited.status_code == 200, edited.text

    async def test_alias_taken_by_another_template(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_template(client, server, Alias="one")
        second = await create_template(client, server, Alias="two")
        assert_error(await client.put(f"/templates/{second['TemplateId']}", json={"Alias": "One"}, headers=server.headers), 1122)
        assert (await client.put(f"/templates/{second['TemplateId']}", json={"Alias": "TWO"}, headers=server.headers)).status_code == 200

    async def test_editing_a_missing_template_is_1101(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert_error(await client.put("/templates/nothing", json={"Name": "x"}, headers=server.headers), 1101, 404)


class TestDelete:
    async def test_a_deleted_template_is_inactive_by_id_and_gone_by_alias(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias="welcome")
        deleted = await client.delete("/templates/welcome", headers=server.headers)
        assert deleted.json() == {"ErrorCode": 0, "Message": f"Template {created['TemplateId']} removed."}
        got = await client.get(f"/templates/{created['TemplateId']}", headers=server.headers)
        assert got.status_code == 200
        assert got.json()["Active"] is False
        assert_error(await client.get("/templates/welcome", headers=server.headers), 1101, 404)
        assert_error(await client.delete(f"/templates/{created['TemplateId']}", headers=server.headers), 1101, 404)
        assert_error(await client.put(f"/templates/{created['TemplateId']}", json={"Name": "x"}, headers=server.headers), 1101, 404)
        assert (await client.get("/templates?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0
        reused = await create_template(client, server, Alias="welcome")
        assert reused["TemplateId"] != created["TemplateId"]

    async def test_a_layout_in_use_cannot_be_deleted(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        layout = await create_layout(client, server)
        user = await create_template(client, server, LayoutTemplate="base")
        error = assert_error(await client.delete("/templates/base", headers=server.headers), 1130)
        assert "dependent templates" in error["Message"]
        await client.delete(f"/templates/{user['TemplateId']}", headers=server.headers)
        assert (await client.delete(f"/templates/{layout['TemplateId']}", headers=server.headers)).status_code == 200


class TestList:
    async def test_paging_and_filters(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_layout(client, server)
        ids = [
            (await create_template(client, server, Name=f"t{i}", LayoutTemplate="base" if i % 2 else None))["TemplateId"] for i in range(5)
        ]
        page = (await client.get("/templates?Count=2&Offset=1", headers=server.headers)).json()
        assert page["TotalCount"] == 6
        assert [t["TemplateId"] for t in page["Templates"]] == ids[:2]
        assert set(page["Templates"][0]) == {"TemplateId", "Name", "Active", "Alias", "TemplateType", "LayoutTemplate"}
        layouts = (await client.get("/templates?count=10&offset=0&templateType=Layout", headers=server.headers)).json()
        assert [t["Alias"] for t in layouts["Templates"]] == ["base"]
        standard = (await client.get("/templates?count=10&offset=0&TemplateType=standard", headers=server.headers)).json()
        assert standard["TotalCount"] == 5
        everything = (await client.get("/templates?count=10&offset=0&TemplateType=All", headers=server.headers)).json()
        assert everything["TotalCount"] == 6
        using = (await client.get("/templates?count=10&offset=0&LayoutTemplate=BASE", headers=server.headers)).json()
        assert [t["TemplateId"] for t in using["Templates"]] == [ids[1], ids[3]]
        assert {t["LayoutTemplate"] for t in using["Templates"]} == {"base"}

    @pytest.mark.parametrize("query", ["count=10&offset=0&templatetype=Fancy", "count=0&offset=0", "count=10", "count=10&offset=-1"])
    async def test_invalid_query_is_1100(self, client: httpx.AsyncClient, server: ServerHandle, query: str) -> None:
        assert_error(await client.get(f"/templates?{query}", headers=server.headers), 1100)


class TestValidate:
    async def test_valid_content_is_rendered_with_the_suggested_model_and_the_test_model(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        body = {
            "Subject": "{{ name }}",
            "HtmlBody": "<html><body>{{ content }}{{ company.address }}{{#each products}}<i>{{.}}</i>{{/each}}"
            "{{^competitors}}There are no substitutes.{{/competitors}}</body></html>",
            "TextBody": "{{ content }}",
            "TestRenderModel": {"name": "Johnny", "content": "<hello>", "company": {"city": "Oslo"}},
        }
        result = (await client.post("/templates/validate", json=body, headers=server.headers)).json()
        assert result["AllContentIsValid"] is True
        assert result["Subject"] == {"ContentIsValid": True, "ValidationErrors": [], "RenderedContent": "Johnny"}
        assert result["TextBody"]["RenderedContent"] == "<hello>"
        assert result["HtmlBody"]["RenderedContent"] == (
            "<html><body>&lt;hello&gt;address_Value<i>products_1</i><i>products_2</i><i>products_3</i>"
            "There are no substitutes.</body></html>"
        )
        assert result["SuggestedTemplateModel"] == {
            "name": "Johnny",
            "content": "<hello>",
            "company": {"address": "address_Value", "city": "Oslo"},
            "products": ["products_1", "products_2", "products_3"],
            "competitors": {},
        }

    async def test_errors_have_positions_and_parts_not_sent_are_null(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        result = (
            await client.post(
                "/templates/validate", json={"HtmlBody": "<p>\n{{#each a}}\n{{ b }}", "Subject": "ok {{ x }}"}, headers=server.headers
            )
        ).json()
        assert result["AllContentIsValid"] is False
        assert result["TextBody"] is None
        assert result["HtmlBody"]["ContentIsValid"] is False
        assert result["HtmlBody"]["RenderedContent"] is None
        [error] = result["HtmlBody"]["ValidationErrors"]
        assert (error["Line"], error["CharacterPosition"]) == (2, 1)
        assert result["Subject"]["RenderedContent"] == "ok x_Value"
        assert result["SuggestedTemplateModel"] == {"x": "x_Value"}

    async def test_css_is_inlined_unless_turned_off(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        html = "<html><head><style>p { color: red }</style></head><body><p>Hi</p></body></html>"
        inlined = (await client.post("/templates/validate", json={"HtmlBody": html}, headers=server.headers)).json()
        assert '<p style="color: red;">Hi</p>' in inlined["HtmlBody"]["RenderedContent"]
        kept = (
            await client.post("/templates/validate", json={"HtmlBody": html, "InlineCssForHtmlTestRender": False}, headers=server.headers)
        ).json()
        assert kept["HtmlBody"]["RenderedContent"] == html

    async def test_validate_inside_a_layout(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_layout(client, server, TextBody="header {{{ @content }}} footer {{ brand }}")
        body = {"Subject": "Subject", "TextBody": "Mr. Jones", "TestRenderModel": {}, "TemplateType": "Standard", "LayoutTemplate": "base"}
        result = (await client.post("/templates/validate", json=body, headers=server.headers)).json()
        assert result["TextBody"]["RenderedContent"] == "header Mr. Jones footer brand_Value"
        assert result["SuggestedTemplateModel"] == {"brand": "brand_Value"}

    async def test_layout_rules_are_reported_per_part(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = {"HtmlBody": "<div>{{{ @content }}}</div>", "TextBody": "no placeholder", "Subject": "x", "TemplateType": "Layout"}
        result = (await client.post("/templates/validate", json=body, headers=server.headers)).json()
        assert result["HtmlBody"] == {"ContentIsValid": True, "ValidationErrors": [], "RenderedContent": "<div></div>"}
        assert result["TextBody"]["ContentIsValid"] is False
        assert result["TextBody"]["ValidationErrors"][0]["Line"] is None
        assert result["Subject"]["ContentIsValid"] is False
        standard = (await client.post("/templates/validate", json={"TextBody": "{{{ @content }}}"}, headers=server.headers)).json()
        assert standard["TextBody"]["ContentIsValid"] is False

    async def test_a_model_that_cannot_render_is_reported(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        body = {"TextBody": "{{#each items}}{{.}}{{/each}}", "TestRenderModel": {"items": "not a list"}}
        result = (await client.post("/templates/validate", json=body, headers=server.headers)).json()
        assert result["TextBody"]["ContentIsValid"] is False
        assert "array" in result["TextBody"]["ValidationErrors"][0]["Message"]

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({}, 1120),
            ({"TestRenderModel": {"a": 1}}, 1120),
            ({"TextBody": "x", "TemplateType": "Layout", "LayoutTemplate": "base"}, 1123),
            ({"TextBody": "x", "LayoutTemplate": "missing"}, 1101),
            ({"TextBody": "x", "TemplateType": "Nope"}, 1122),
            ({"TextBody": "x", "TestRenderModel": [1, 2]}, 403),
        ],
    )
    async def test_invalid_requests(self, client: httpx.AsyncClient, server: ServerHandle, body: dict[str, Any], code: int) -> None:
        assert_error(await client.post("/templates/validate", json=body, headers=server.headers), code)


class TestPush:
    async def test_dry_run_reports_and_changes_nothing_then_push_copies(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        destination = await create_server(client, "Production")
        await create_template(client, server, Alias="welcome", LayoutTemplate=None)
        await create_template(client, server, Alias=None, Name="no alias")
        await create_layout(client, server, alias="base")
        await client.put("/templates/welcome", json={"LayoutTemplate": "base"}, headers=server.headers)
        existing = await create_template(client, destination, Alias="WELCOME", Name="Old")
        request = {"SourceServerID": server.id, "DestinationServerID": destination.id, "PerformChanges": False}

        dry = await client.put("/templates/push", json=request, headers=ACCOUNT)
        assert dry.status_code == 200, dry.text
        assert dry.json() == {
            "TotalCount": 2,
            "Templates": [
                {"Action": "Create", "TemplateId": None, "Alias": "base", "Name": "Base layout", "TemplateType": "Layout"},
                {"Action": "Edit", "TemplateId": existing["TemplateId"], "Alias": "welcome", "Name": "Welcome", "TemplateType": "Standard"},
            ],
        }
        assert (await client.get("/templates?count=10&offset=0", headers=destination.headers)).json()["TotalCount"] == 1

        pushed = (await client.put("/templates/push", json=request | {"PerformChanges": True}, headers=ACCOUNT)).json()
        assert [a["Action"] for a in pushed["Templates"]] == ["Create", "Edit"]
        layout_id = pushed["Templates"][0]["TemplateId"]
        assert isinstance(layout_id, int)
        copied = (await client.get(f"/templates/{existing['TemplateId']}", headers=destination.headers)).json()
        assert copied["Name"] == "Welcome"
        assert copied["Alias"] == "welcome"
        assert copied["LayoutTemplate"] == "base"
        assert (await client.get(f"/templates/{layout_id}", headers=destination.headers)).json()["AssociatedServerId"] == destination.id

        again = (await client.put("/templates/push", json=request | {"PerformChanges": True}, headers=ACCOUNT)).json()
        assert again == {"TotalCount": 0, "Templates": []}

    async def test_push_needs_the_account_token(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        request = {"SourceServerID": server.id, "DestinationServerID": server.id, "PerformChanges": False}
        assert_error(await client.put("/templates/push", json=request, headers=server.headers), 10, 401)

    async def test_unknown_servers_are_601(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        both = assert_error(
            await client.put(
                "/templates/push", json={"SourceServerID": 998, "DestinationServerID": 999, "PerformChanges": True}, headers=ACCOUNT
            ),
            601,
        )
        assert both["Message"] == "The source and destination servers were not found."
        source = assert_error(
            await client.put(
                "/templates/push", json={"SourceServerID": 998, "DestinationServerID": server.id, "PerformChanges": True}, headers=ACCOUNT
            ),
            601,
        )
        assert source["Message"] == "The source server was not found."
        destination = assert_error(
            await client.put(
                "/templates/push", json={"SourceServerID": server.id, "DestinationServerID": 999, "PerformChanges": True}, headers=ACCOUNT
            ),
            601,
        )
        assert destination["Message"] == "The destination server was not found."

    async def test_nothing_to_push_is_1124(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        destination = await create_server(client, "Production")
        await create_template(client, server, Alias=None)
        request = {"SourceServerID": server.id, "DestinationServerID": destination.id, "PerformChanges": True}
        assert_error(await client.put("/templates/push", json=request, headers=ACCOUNT), 1124)

    async def test_type_mismatch_is_1125_and_nothing_is_written(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        destination = await create_server(client, "Production")
        await create_template(client, server, Alias="aaa")
        await create_layout(client, server, alias="base")
        await create_template(client, destination, Alias="Base")
        request = {"SourceServerID": server.id, "DestinationServerID": destination.id, "PerformChanges": True}
        assert_error(await client.put("/templates/push", json=request, headers=ACCOUNT), 1125)
        assert (await client.get("/templates?count=10&offset=0", headers=destination.headers)).json()["TotalCount"] == 1

    async def test_the_destination_limit_is_1105(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        destination = await create_server(client, "Production")
        for i in range(MAX_TEMPLATES_PER_SERVER):
            await create_template(client, destination, Name=f"t{i}")
        await create_template(client, server, Alias="one")
        request = {"SourceServerID": server.id, "DestinationServerID": destination.id, "PerformChanges": True}
        assert_error(await client.put("/templates/push", json=request, headers=ACCOUNT), 1105)

    @pytest.mark.parametrize(
        "body",
        [{}, {"SourceServerID": 1, "DestinationServerID": 2}, {"SourceServerID": "x", "DestinationServerID": 2, "PerformChanges": True}],
    )
    async def test_malformed_push_is_403(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        assert_error(await client.put("/templates/push", json=body, headers=ACCOUNT), 403)

    async def test_server_ids_may_be_strings_of_digits(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        destination = await create_server(client, "Production")
        await create_template(client, server, Alias="one")
        request = {"SourceServerID": str(server.id), "DestinationServerID": str(destination.id), "PerformChanges": False}
        assert (await client.put("/templates/push", json=request, headers=ACCOUNT)).json()["TotalCount"] == 1
