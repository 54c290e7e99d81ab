"""The app for inbound tests: its own INBOUND_DOMAIN and a fast inbound retry schedule (2 retries,
no waiting), and helpers that hand mail to the API as the MX listener does."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.config import Settings
from api_service.main import create_app
from shared.schemas.inbound_smtp import INBOUND_MESSAGE_PATH
from tests.conftest import ACCOUNT_TOKEN
from tests.factories import ACCOUNT, ServerHandle

INBOUND_DOMAIN = "inbound.postgate.test"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "inbound"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        account_token=ACCOUNT_TOKEN,
        db_pool_size=5,
        db_max_overflow=5,
        inbound_domain=INBOUND_DOMAIN,
        inbound_hook_retry_schedule="0,0",
        webhook_allowed_networks="127.0.0.0/8",
    )


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def simple(*, sender: str = "Ann <ann@example.com>", to: str = "x@example.net", subject: str = "Hello", headers: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 04 Mar 2025 09:00:00 +0100\r\n{headers}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello there.\r\n"
    ).encode()


async def inbound_address(client: httpx.AsyncClient, server: ServerHandle, mailbox_hash: str = "") -> str:
    address: str = (await client.get("/server", headers=server.headers)).json()["InboundAddress"]
    if mailbox_hash:
        local, _, domain = address.partition("@")
        address = f"{local}+{mailbox_hash}@{domain}"
    return address


async def deliver(client: httpx.AsyncClient, raw: bytes, *rcpt_tos: str, mail_from: str = "ann@example.com") -> httpx.Response:
    """What the MX listener does after DATA."""
    body = {"MailFrom": mail_from, "RcptTo": list(rcpt_tos), "RawMessage": base64.b64encode(raw).decode()}
    return await client.post(INBOUND_MESSAGE_PATH, json=body, headers=ACCOUNT)


async def received(client: httpx.AsyncClient, raw: bytes, *rcpt_tos: str, mail_from: str = "ann@example.com") -> list[str]:
    response = await deliver(client, raw, *rcpt_tos, mail_from=mail_from)
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["MessageIDs"]
    return ids


async def details(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/messages/inbound/{message_id}/details", headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
