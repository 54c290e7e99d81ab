"""What the delivery tests share: a server that may send from example.org, one send, the queue's statuses."""

from __future__ import annotations

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from api_service.models import MessageRecipient
from tests.factories import ServerHandle, create_domain, create_server, message


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


async def send(client: httpx.AsyncClient, server: ServerHandle, to: str) -> str:
    response = await client.post("/email", json=message(From="app@example.org", To=to), headers=server.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["MessageID"])


async def statuses(app: FastAPI) -> list[str]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(MessageRecipient.status).order_by(MessageRecipient.id))).scalars())
