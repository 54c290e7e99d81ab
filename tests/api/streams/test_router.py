"""The Message Streams API: defaults, create, edit, archive and unarchive, and its ErrorCodes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio


async def create(client: httpx.AsyncClient, server: ServerHandle, **fields: Any) -> httpx.Response:
    body = {"ID": "newsletter", "Name": "Newsletter", "MessageStreamType": "Broadcasts"} | fields
    return await client.post("/message-streams", json=body, headers=server.headers)


class TestMessageStreams:
    async def test_a_new_server_has_the_three_defaults(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        listed = (await client.get("/message-streams", headers=server.headers)).json()
        assert listed["TotalCount"] == 3
        streams = {s["ID"]: s for s in listed["MessageStreams"]}
        assert {k: v["MessageStreamType"] for k, v in streams.items()} == {
            "outbound": "Transactional",
            "inbound": "Inbound",
            "broadcast": "Broadcasts",
        }
        assert streams["broadcast"]["SubscriptionManagementConfiguration"] == {"UnsubscribeHandlingType": "Postmark"}
        assert streams["outbound"]["SubscriptionManagementConfiguration"] == {"UnsubscribeHandlingType": "None"}
        assert streams["outbound"]["ServerID"] == server.id
        assert (streams["outbound"]["UpdatedAt"], streams["outbound"]["ArchivedAt"], streams["outbound"]["ExpectedPurgeDate"]) == (
            None,
            None,
            None,
        )
        only = (await client.get("/message-streams?MessageStreamType=Transactional", headers=server.headers)).json()
        assert [s["ID"] for s in only["MessageStreams"]] == ["outbound"]
        bad = await client.get("/message-streams?MessageStreamType=Nope", headers=server.headers)
        assert bad.json()["ErrorCode"] == 1221

    async def test_create_get_edit(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        created = await create(client, server, Description="Monthly")
        assert created.status_code == 200, created.text
        body = created.json()
        assert (body["ID"], body["Name"], body["Description"], body["MessageStreamType"]) == (
            "newsletter",
            "Newsletter",
            "Monthly",
            "Broadcasts",
        )
        assert body["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"] == "Postmark"
        assert (await client.get("/message-streams/newsletter", headers=server.headers)).json()["Name"] == "Newsletter"
        edited = await client.patch(
            "/message-streams/newsletter",
            json={"Name": "News", "SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "Custom"}},
            headers=server.headers,
        )
        assert edited.json()["Name"] == "News"
        assert edited.json()["Description"] == "Monthly"
        assert edited.json()["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"] == "Custom"
        assert edited.json()["UpdatedAt"] is not None
        sent = await client.post("/email", json=message(MessageStream="newsletter"), headers=server.headers)
        assert sent.status_code == 200

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"ID": ""}, 1222),
            ({"Name": " "}, 1223),
            ({"Name": "x" * 101}, 1224),
            ({"ID": "1abc"}, 1227),
            ({"ID": "Upper"}, 1227),
            ({"ID": "a" * 31}, 1227),
            ({"ID": "pm-mine"}, 1233),
            ({"ID": "all"}, 1237),
            ({"ID": "outbound"}, 1230),
            ({"MessageStreamType": "Inbound"}, 1228),
            ({"MessageStreamType": "Other"}, 1221),
            ({"Description": "x" * 1001}, 1231),
            ({"Description": "<b>bold</b>"}, 1234),
            ({"SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "Maybe"}}, 1240),
            ({"SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "None"}}, 1239),
            ({"MessageStreamType": "Transactional", "SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "Postmark"}}, 1239),
        ],
    )
    async def test_create_errors(self, client: httpx.AsyncClient, fields: dict[str, Any], code: int) -> None:
        server = await sending_server(client)
        response = await create(client, server, **fields)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == code

    async def test_at_most_ten_streams(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        for n in range(7):
            assert (await create(client, server, ID=f"s{n}")).status_code == 200
        assert (await create(client, server, ID="s7")).json()["ErrorCode"] == 1225

    async def test_archive_refuses_mail_and_unarchive_brings_it_back(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        await create(client, server)
        archived = await client.post("/message-streams/newsletter/archive", headers=server.headers)
        assert archived.status_code == 200
        assert set(archived.json()) == {"ID", "ServerID", "ExpectedPurgeDate"}
        assert archived.json()["ID"] == "newsletter"
        assert [s["ID"] for s in (await client.get("/message-streams", headers=server.headers)).json()["MessageStreams"]] == [
            "outbound",
            "inbound",
            "broadcast",
        ]
        shown = (await client.get("/message-streams?IncludeArchivedStreams=true", headers=server.headers)).json()
        assert shown["TotalCount"] == 4
        refused = await client.post("/email", json=message(MessageStream="newsletter"), headers=server.headers)
        assert refused.json()["ErrorCode"] == 1235
        hook = await client.post(
            "/webhooks", json={"Url": "https://example.com/h", "MessageStream": "newsletter", "Triggers": {}}, headers=server.headers
        )
        assert hook.json()["ErrorCode"] == 1350
        got = (await client.get("/message-streams/newsletter", headers=server.headers)).json()
        assert got["ArchivedAt"] is not None
        assert got["ExpectedPurgeDate"] == archived.json()["ExpectedPurgeDate"]
        unarchived = await client.post("/message-streams/newsletter/unarchive", headers=server.headers)
        assert unarchived.json()["ArchivedAt"] is None
        assert unarchived.json()["ExpectedPurgeDate"] is None
        assert (await client.post("/email", json=message(MessageStream="newsletter"), headers=server.headers)).status_code == 200

    async def test_defaults_cannot_be_archived_and_unknown_is_1226(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        for stream in ("outbound", "inbound"):
            response = await client.post(f"/message-streams/{stream}/archive", json={}, headers=server.headers)
            assert response.json()["ErrorCode"] == 1229
        assert (await client.post("/message-streams/broadcast/archive", headers=server.headers)).status_code == 200
        for method, path in (
            ("GET", "/message-streams/nope"),
            ("PATCH", "/message-streams/nope"),
            ("POST", "/message-streams/nope/archive"),
        ):
            response = await client.request(method, path, json={} if method != "GET" else None, headers=server.headers)
            assert response.status_code == 422
            assert response.json()["ErrorCode"] == 1226

    async def test_inbound_stream_takes_only_none_handling(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.patch(
            "/message-streams/inbound",
            json={"SubscriptionManagementConfiguration": {"UnsubscribeHandlingType": "Postmark"}},
            headers=server.headers,
        )
        assert response.json()["ErrorCode"] == 1239
