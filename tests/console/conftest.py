"""A console signed in over the in-process app, with its session cookie and CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio

from tests.conftest import ACCOUNT_TOKEN

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@dataclass
class Console:
    client: httpx.AsyncClient
    csrf: str

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(path, data={"csrf_token": self.csrf, **(data or {})})


async def sign_in(client: httpx.AsyncClient, username: str = "admin", password: str = ACCOUNT_TOKEN) -> httpx.Response:
    form = await client.get("/console/sign-in")
    return await client.post(
        "/console/sign-in", data={"csrf_token": csrf_of(form.text), "username": username, "password": password, "next": "/console/servers"}
    )


async def signed_in_console(client: httpx.AsyncClient, username: str = "admin", password: str = ACCOUNT_TOKEN) -> Console:
    response = await sign_in(client, username, password)
    assert response.status_code == 303, response.text
    page = await client.get("/console/servers")
    return Console(client=client, csrf=csrf_of(page.text))


@pytest_asyncio.fixture
async def console(client: httpx.AsyncClient) -> AsyncIterator[Console]:
    client.headers.pop("Accept", None)
    yield await signed_in_console(client)
