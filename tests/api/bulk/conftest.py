"""A server that may send from news@example.org, a layout and a template, and a bulk body builder."""

from __future__ import annotations

from typing import Any

import httpx
import pytest_asyncio

from tests.factories import ServerHandle, create_domain, create_layout, create_server, create_template


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    await create_layout(client, server, alias="brand", HtmlBody="<html><body><b>{{ brand }}</b>{{{ @content }}}</body></html>")
    await create_template(client, server, Name="News", Alias="news", LayoutTemplate="brand", Subject="News for {{ name }}")
    return server


def bulk(*entries: dict[str, Any], **shared: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "From": "News <news@example.org>",
        "Subject": "Hello {{ name }}",
        "HtmlBody": '<p>Hi {{ name }}</p><p><a href="{{{ pm:unsubscribe }}}">Unsubscribe</a></p>',
        "TextBody": "Hi {{ name }}",
        "Messages": list(entries) or [{"To": "ann@example.net", "TemplateModel": {"name": "Ann"}}],
    }
    body.update(shared)
    return {k: v for k, v in body.items() if v is not None}


def recipients(count: int, *, domain: str = "example.net") -> list[dict[str, Any]]:
    return [{"To": f"user{i}@{domain}", "TemplateModel": {"name": f"User {i}"}, "Metadata": {"n": str(i)}} for i in range(count)]
