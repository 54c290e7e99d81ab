"""The OpenAPI document's request examples work when pasted, and every operation documents its errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import ACCOUNT, create_server

pytestmark = pytest.mark.asyncio


async def examples(client: httpx.AsyncClient) -> list[tuple[str, str, Any]]:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref") or body.get("items", {}).get("$ref")
            if not ref:
                continue
            for example in schemas[ref.rsplit("/", 1)[1]].get("examples", []):
                found.append((method.upper(), path, [example] if "items" in body else example))
    return found


class TestOpenApi:
    async def test_every_request_example_is_accepted_as_pasted(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "Examples")
        headers = {**server.headers, **ACCOUNT}
        ids = {"{stream}": "outbound", "{id_or_alias}": "receipt"}
        created_as = {"/servers": "{server_id}", "/senders": "{signature_id}", "/domains": "{domain_id}", "/webhooks": "{webhook_id}"}
        # Creations first, so that the examples that edit something find it, and the /email routes find the
        # signature the /senders example made (and the templates the /templates examples made).
        ordered = sorted(await examples(client), key=lambda e: (e[1] not in created_as, e[1].startswith("/email")))
        for method, path, example in ordered:
            url = path
            for placeholder, value in ids.items():
                url = url.replace(placeholder, value)
            response = await client.request(method, url, json=example, headers=headers)
            assert response.status_code == 200, (method, path, example, response.text)
            if method == "POST" and path in created_as:
                ids[created_as[path]] = str(response.json()["ID"])
        assert len(ordered) >= 10

    async def test_every_operation_documents_postmark_errors(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            if path in ("/health", "/docs"):
                continue
            for method, operation in operations.items():
                assert "401" in operation["responses"], (method, path)
                assert "10" in operation["responses"]["401"]["description"]
                assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
