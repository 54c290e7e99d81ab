from __future__ import annotations

import httpx
import pytest

from tests.factories import ACCOUNT, create_sender

pytestmark = pytest.mark.asyncio


class TestSendersApi:
    async def test_create_get_edit_delete(self, client: httpx.AsyncClient) -> None:
        created = await create_sender(client, "Me@Example.com", "Me", ReplyToEmail="replies@example.com")
        assert created["EmailAddress"] == "me@example.com"
        assert created["Domain"] == "example.com"
        assert created["Confirmed"] is True
        got = await client.get(f"/senders/{created['ID']}", headers=ACCOUNT)
        assert got.json()["ReplyToEmailAddress"] == "replies@example.com"
        edited = await client.put(f"/senders/{created['ID']}", json={"Name": "New"}, headers=ACCOUNT)
        assert edited.json()["Name"] == "New"
        listed = await client.get("/Senders/?Count=10&Offset=0", headers=ACCOUNT)
        assert listed.json()["TotalCount"] == 1
        assert listed.json()["SenderSignatures"][0]["EmailAddress"] == "me@example.com"
        deleted = await client.delete(f"/senders/{created['ID']}", headers=ACCOUNT)
        assert deleted.json()["ErrorCode"] == 0
        assert (await client.get(f"/senders/{created['ID']}", headers=ACCOUNT)).status_code == 404

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"Name": "x"}, 520),
            ({"FromEmail": "bad", "Name": "x"}, 522),
            ({"FromEmail": "a@b.com", "Name": "x", "ConfirmationPersonalNote": "n" * 401}, 521),
        ],
    )
    async def test_invalid_input_returns_its_code(self, client: httpx.AsyncClient, body: dict[str, str], code: int) -> None:
        response = await client.post("/senders", json=body, headers=ACCOUNT)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == code

    async def test_duplicate_returns_504(self, client: httpx.AsyncClient) -> None:
        await create_sender(client)
        response = await client.post("/senders", json={"FromEmail": "SENDER@example.com", "Name": "x"}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == 504

    async def test_unknown_id_returns_404_code_501(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/senders/999", headers=ACCOUNT)
        assert response.status_code == 404
        assert response.json()["ErrorCode"] == 501
