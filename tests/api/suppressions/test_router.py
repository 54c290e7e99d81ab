from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from shared.constants import BounceType
from tests.api.bounces.test_router import bounce
from tests.factories import message, sending_server

pytestmark = pytest.mark.asyncio
BASE = "/message-streams/outbound/suppressions"


class TestSuppressions:
    async def test_suppress_dump_and_reactivate(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        added = await client.post(
            BASE, json={"Suppressions": [{"EmailAddress": "Quiet@Example.net"}, {"EmailAddress": "nope"}]}, headers=server.headers
        )
        assert added.json() == {
            "Suppressions": [
                {"EmailAddress": "Quiet@example.net", "Status": "Suppressed", "Message": None},
                {"EmailAddress": "nope", "Status": "Failed", "Message": "An invalid email address was provided."},
            ]
        }
        assert (await client.post("/email", json=message(To="quiet@example.net"), headers=server.headers)).json()["ErrorCode"] == 406
        dump = (await client.get(f"{BASE}/dump?SuppressionReason=ManualSuppression", headers=server.headers)).json()["Suppressions"]
        assert [(s["EmailAddress"], s["Origin"]) for s in dump] == [("quiet@example.net", "Customer")]
        deleted = await client.post(
            f"{BASE}/delete", json={"Suppressions": [{"EmailAddress": "quiet@example.net"}]}, headers=server.headers
        )
        assert deleted.json()["Suppressions"][0]["Status"] == "Deleted"
        assert (await client.post("/email", json=message(To="quiet@example.net"), headers=server.headers)).status_code == 200

    async def test_spam_complaint_cannot_be_deleted_and_hard_bounce_reactivates(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        await bounce(app, server, BounceType.SPAM_COMPLAINT, "angry@example.net")
        await bounce(app, server, BounceType.HARD_BOUNCE, "gone@example.net")
        body = {"Suppressions": [{"EmailAddress": "angry@example.net"}, {"EmailAddress": "gone@example.net"}]}
        results = (await client.post(f"{BASE}/delete", json=body, headers=server.headers)).json()["Suppressions"]
        assert [r["Status"] for r in results] == ["Failed", "Deleted"]
        hard = (await client.get("/bounces?count=10&offset=0&type=HardBounce", headers=server.headers)).json()["Bounces"][0]
        assert hard["Inactive"] is False

    async def test_limits_and_unknown_stream(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        many = {"Suppressions": [{"EmailAddress": f"a{i}@example.net"} for i in range(51)]}
        assert (await client.post(BASE, json=many, headers=server.headers)).json()["ErrorCode"] == 1410
        assert (await client.post(BASE, json={}, headers=server.headers)).json()["ErrorCode"] == 1409
        response = await client.get("/message-streams/nope/suppressions/dump", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 1226)
