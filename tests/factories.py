"""Small typed helpers that create things through the public API, as a user would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import ACCOUNT_TOKEN

ACCOUNT = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
# What the SMTP gateway shows on /internal/smtp/*: the tests' API has no INTERNAL_TOKEN, so the account token.
INTERNAL = {"Authorization": f"Bearer {ACCOUNT_TOKEN}"}


@dataclass(frozen=True, slots=True)
class ServerHandle:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self.token}


async def create_server(client: httpx.AsyncClient, name: str = "Test server", **fields: Any) -> ServerHandle:
    response = await client.post("/servers", json={"Name": name, **fields}, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body = response.json()
    return ServerHandle(id=body["ID"], token=body["ApiTokens"][0])


async def create_sender(
    client: httpx.AsyncClient, email: str = "sender@example.com", name: str = "Sender", **fields: Any
) -> dict[str, Any]:
    response = await client.post("/senders", json={"FromEmail": email, "Name": name, **fields}, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_domain(client: httpx.AsyncClient, name: str = "example.org") -> dict[str, Any]:
    response = await client.post("/domains", json={"Name": name}, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "From": "Sender <sender@example.com>",
        "To": "receiver@example.net",
        "Subject": "Hello",
        "TextBody": "Hello there",
        "HtmlBody": "<p>Hello there</p>",
    }
    body.update(overrides)
    return body


async def sending_server(client: httpx.AsyncClient) -> ServerHandle:
    """A server plus the default sender signature, ready to send."""
    server = await create_server(client)
    await create_sender(client)
    return server


async def create_template(client: httpx.AsyncClient, server: ServerHandle, **fields: Any) -> dict[str, Any]:
    """A template through the API: a Standard one with a subject and both bodies unless `fields` say otherwise."""
    body: dict[str, Any] = {"Name": "Welcome", "Subject": "Hi {{ name }}", "HtmlBody": "<p>Hi {{ name }}</p>", "TextBody": "Hi {{ name }}"}
    body.update(fields)
    response = await client.post("/templates", json={k: v for k, v in body.items() if v is not None}, headers=server.headers)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_layout(client: httpx.AsyncClient, server: ServerHandle, alias: str | None = "base", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "Base layout",
        "Alias": alias,
        "TemplateType": "Layout",
        "Subject": None,
        "HtmlBody": "<html><body><header>{{ brand }}</header>{{{ @content }}}</body></html>",
        "TextBody": "{{ brand }}\n{{{ @content }}}",
    }
    body.update(fields)
    return await create_template(client, server, **body)
