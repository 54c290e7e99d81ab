"""Data removal reaches inbound mail: messages from or to the address go, the others stay."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api_service.config import Settings
from api_service.data_removals.tasks import process_due
from api_service.models import InboundMessage
from tests.api.inbound.conftest import inbound_address, received, simple
from tests.factories import ACCOUNT, create_server

pytestmark = pytest.mark.asyncio

TARGET = "Gone.Person@Example.net"


class TestInboundDataRemoval:
    async def test_inbound_messages_from_or_to_the_address_are_deleted(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        server = await create_server(client, "Inbound removal")
        address = await inbound_address(client, server)
        from_target = await received(client, simple(sender=f"Gone <{TARGET}>", to=address), address, mail_from="bounce@example.org")
        cc_target = await received(client, simple(to=address, headers=f"Cc: {TARGET.lower()}\r\n"), address)
        envelope_target = await received(client, simple(to=address), address, mail_from=TARGET.upper())
        kept = await received(client, simple(sender="Stays <stays@example.org>", to=address), address, mail_from="stays@example.org")

        body = {"RequestedBy": "privacy@example.com", "RequestedFor": TARGET, "NotifyWhenCompleted": False}
        created = (await client.post("/data-removals", json=body, headers=ACCOUNT)).json()
        rounds = 0
        while await process_due(sessionmaker=app.state.sessionmaker, settings=settings.model_copy(update={"data_removal_batch_size": 1})):
            rounds += 1
            assert rounds < 20
        done = (await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)).json()
        assert (done["Status"], done["Removed"]["InboundMessagesDeleted"]) == ("Done", 3)

        async with app.state.sessionmaker() as session:
            left = {
                str(row.id)
                for row in (await session.execute(select(InboundMessage).where(InboundMessage.server_id == server.id))).scalars()
            }
        assert left == set(kept)
        for gone in (*from_target, *cc_target, *envelope_target):
            response = await client.get(f"/messages/inbound/{gone}/details", headers=server.headers)
            assert response.status_code == 404
