from __future__ import annotations

import httpx
import pytest

from tests.factories import ACCOUNT, create_server

pytestmark = pytest.mark.asyncio


class TestServersApi:
    async def test_create_returns_full_token_once_then_masked(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/servers", json={"Name": "Prod", "Color": "BLUE"}, headers=ACCOUNT)
        assert created.status_code == 200, created.text
        body = created.json()
        token = body["ApiTokens"][0]
        assert len(token) == 36
        assert body["Color"] == "blue"
        assert body["SmtpApiActivated"] is False
        assert body["DeliveryType"] == "Live"
        again = await client.get(f"/servers/{body['ID']}", headers=ACCOUNT)
        assert again.json()["ApiTokens"] == [f"********-****-****-****-********{token[-4:]}"]

    async def test_server_token_reads_and_edits_its_server(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        got = await client.get("/server", headers=server.headers)
        assert got.json()["ID"] == server.id
        assert got.json()["ApiTokens"] == [server.token]
        edited = await client.put(
            "/server",
            json={"SmtpApiActivated": True, "EnableSmtpApiErrorHooks": True, "BounceHookUrl": "https://hooks.example.com/b"},
            headers=server.headers,
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["SmtpApiActivated"] is True
        assert edited.json()["EnableSmtpApiErrorHooks"] is True
        assert edited.json()["BounceHookUrl"] == "https://hooks.example.com/b"
        assert (await client.get("/server", headers=server.headers)).json()["SmtpApiActivated"] is True

    async def test_bad_hook_url_returns_606(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.put("/server", json={"BounceHookUrl": "ftp://nope"}, headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 606

    async def test_empty_edit_returns_609(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.put("/server", json={}, headers=server.headers)
        assert response.json()["ErrorCode"] == 609

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"Color": "pink"}, 607),
            ({"Name": ""}, 608),
            ({"InboundSpamThreshold": 7}, 611),
            ({"TrackLinks": "Sometimes"}, 612),
            ({"DeliveryType": "Fast"}, 613),
        ],
    )
    async def test_invalid_fields_return_their_codes(self, client: httpx.AsyncClient, fields: dict[str, object], code: int) -> None:
        response = await client.post("/servers", json={"Name": "S", **fields}, headers=ACCOUNT)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == code

    async def test_duplicate_name_returns_603(self, client: httpx.AsyncClient) -> None:
        await create_server(client, "Same")
        response = await client.post("/servers", json={"Name": "same"}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == 603

    async def test_list_filters_by_name_and_pages(self, client: httpx.AsyncClient) -> None:
        for name in ("Alpha", "Beta", "Alphabet"):
            await create_server(client, name)
        listed = await client.get("/servers?count=1&offset=0&name=alpha", headers=ACCOUNT)
        assert listed.json()["TotalCount"] == 2
        assert len(listed.json()["Servers"]) == 1

    async def test_list_without_count_returns_600(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/servers", headers=ACCOUNT)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 600

    async def test_delete_removes_server_and_its_token(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "Doomed")
        response = await client.delete(f"/servers/{server.id}", headers=ACCOUNT)
        assert response.json() == {"ErrorCode": 0, "Message": "Server Doomed removed."}
        assert (await client.get("/server", headers=server.headers)).status_code == 401

    async def test_account_endpoints_refuse_server_token(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.get("/servers?count=10&offset=0", headers=server.headers)
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == 10


class TestRetentionDays:
    async def test_default_is_the_global_retention(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        assert (await client.get("/server", headers=server.headers)).json()["RetentionDays"] == 45
        listed = (await client.get("/servers", params={"count": 10, "offset": 0}, headers=ACCOUNT)).json()
        assert [s["RetentionDays"] for s in listed["Servers"]] == [45]

    async def test_account_token_sets_it_and_every_view_shows_it(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        edited = await client.put(f"/servers/{server.id}", json={"RetentionDays": 7}, headers=ACCOUNT)
        assert edited.status_code == 200, edited.text
        assert edited.json()["RetentionDays"] == 7
        assert (await client.get(f"/servers/{server.id}", headers=ACCOUNT)).json()["RetentionDays"] == 7
        assert (await client.get("/server", headers=server.headers)).json()["RetentionDays"] == 7
        listed = (await client.get("/servers", params={"count": 10, "offset": 0}, headers=ACCOUNT)).json()
        assert listed["Servers"][0]["RetentionDays"] == 7

    async def test_create_takes_it(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/servers", json={"Name": "Kept long", "RetentionDays": 365}, headers=ACCOUNT)
        assert created.status_code == 200, created.text
        assert created.json()["RetentionDays"] == 365

    @pytest.mark.parametrize("days", [0, 6, 366, -1, "a month"])
    async def test_outside_7_to_365_returns_403(self, client: httpx.AsyncClient, days: object) -> None:
        server = await create_server(client)
        response = await client.put(f"/servers/{server.id}", json={"RetentionDays": days}, headers=ACCOUNT)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 403
        assert "RetentionDays" in response.json()["Message"]
        assert (await client.get(f"/servers/{server.id}", headers=ACCOUNT)).json()["RetentionDays"] == 45

    async def test_server_token_cannot_change_it(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.put("/server", json={"RetentionDays": 365}, headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 403
        assert (await client.get("/server", headers=server.headers)).json()["RetentionDays"] == 45
