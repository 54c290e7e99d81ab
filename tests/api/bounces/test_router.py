from __future__ import annotations

import uuid

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.bounces.service import record_bounce
from shared.constants import BounceType
from tests.factories import ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await sending_server(client)


async def bounce(app: FastAPI, server: ServerHandle, bounce_type: BounceType, email: str, *, message_id: str | None = None) -> int:
    async with app.state.sessionmaker() as session:
        row = await record_bounce(
            session=session,
            server_id=server.id,
            bounce_type=bounce_type,
            email=email,
            details="550 5.1.1 <x>: Recipient address rejected",
            message_id=uuid.UUID(message_id) if message_id else None,
            from_email="sender@example.com",
            subject="Hello",
            tag="welcome",
            dump=b"Subject: Hello\r\n\r\nraw",
        )
        await session.commit()
        return row.id


class TestBounces:
    async def test_hard_bounce_is_listed_and_suppresses_the_recipient(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        sent = await client.post("/email", json=message(To="gone@example.net"), headers=server.headers)
        bounce_id = await bounce(app, server, BounceType.HARD_BOUNCE, "gone@example.net", message_id=sent.json()["MessageID"])
        listed = await client.get("/bounces?count=10&offset=0", headers=server.headers)
        [item] = listed.json()["Bounces"]
        assert item["ID"] == bounce_id
        assert item["Type"] == "HardBounce"
        assert item["TypeCode"] == 1
        assert item["Inactive"] is True
        assert item["CanActivate"] is True
        assert item["DumpAvailable"] is True
        assert item["MessageID"] == sent.json()["MessageID"]
        again = await client.post("/email", json=message(To="gone@example.net"), headers=server.headers)
        assert again.status_code == 422
        refused = again.json()
        assert refused["ErrorCode"] == 406
        assert refused["Message"] == (
            "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: gone@example.net. "
            "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
        )
        assert [(r["Email"], r["Reason"]) for r in refused["InactiveRecipients"]] == [("gone@example.net", "HardBounce")]
        mixed = await client.post("/email", json=message(To="gone@example.net, ok@example.net"), headers=server.headers)
        assert mixed.status_code == 200
        assert mixed.json()["Message"] == "Message OK, but will not deliver to these inactive addresses: gone@example.net."
        batch = await client.post("/email/batch", json=[message(To="gone@example.net")], headers=server.headers)
        assert batch.json()[0]["ErrorCode"] == 406
        assert batch.json()[0]["Message"].endswith("manual suppression. ")

    async def test_activate_lets_mail_through_again(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        bounce_id = await bounce(app, server, BounceType.HARD_BOUNCE, "gone@example.net")
        activated = await client.put(f"/bounces/{bounce_id}/activate", headers=server.headers)
        assert activated.status_code == 200, activated.text
        assert activated.json()["Message"] == "OK"
        assert activated.json()["Bounce"]["Inactive"] is False
        assert (await client.post("/email", json=message(To="gone@example.net"), headers=server.headers)).status_code == 200

    async def test_spam_complaint_cannot_be_activated(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        bounce_id = await bounce(app, server, BounceType.SPAM_COMPLAINT, "angry@example.net")
        response = await client.put(f"/bounces/{bounce_id}/activate", headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 1003

    async def test_get_and_dump(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        bounce_id = await bounce(app, server, BounceType.SOFT_BOUNCE, "full@example.net")
        got = await client.get(f"/bounces/{bounce_id}", headers=server.headers)
        assert got.json()["Name"] == "Soft bounce/Undeliverable"
        assert got.json()["Details"].startswith("550 5.1.1")
        assert got.json()["Content"] == ""
        dump = await client.get(f"/bounces/{bounce_id}/dump", headers=server.headers)
        assert dump.json() == {"Body": "Subject: Hello\r\n\r\nraw"}
        assert (await client.get("/bounces/424242", headers=server.headers)).json()["ErrorCode"] == 1001

    @pytest.mark.parametrize(
        ("query", "total"),
        [
            ("type=HardBounce", 1),
            ("type=softbounce", 1),
            ("inactive=true", 1),
            ("inactive=false", 1),
            ("emailFilter=full", 1),
            ("emailFilter=FULL@", 1),
            ("emailFilter=%25", 0),
            ("tag=welcome", 2),
            ("messagestream=broadcast", 0),
        ],
    )
    async def test_filters(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, query: str, total: int) -> None:
        await bounce(app, server, BounceType.HARD_BOUNCE, "gone@example.net")
        await bounce(app, server, BounceType.SOFT_BOUNCE, "full@example.net")
        response = await client.get(f"/bounces?count=10&offset=0&{query}", headers=server.headers)
        assert response.json()["TotalCount"] == total

    async def test_bad_type_returns_1000(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/bounces?count=10&offset=0&type=Nope", headers=server.headers)
        assert response.json()["ErrorCode"] == 1000

    async def test_delivery_stats(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await bounce(app, server, BounceType.HARD_BOUNCE, "gone@example.net")
        await bounce(app, server, BounceType.SOFT_BOUNCE, "full@example.net")
        await bounce(app, server, BounceType.SOFT_BOUNCE, "full2@example.net")
        stats = await client.get("/deliveryStats", headers=server.headers)
        assert stats.json() == {
            "InactiveMails": 1,
            "Bounces": [
                {"Name": "All", "Count": 3},
                {"Type": "HardBounce", "Name": "Hard bounce", "Count": 1},
                {"Type": "SoftBounce", "Name": "Soft bounce/Undeliverable", "Count": 2},
            ],
        }
