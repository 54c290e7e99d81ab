"""The 406 keeps Postmark's ErrorCode and Message exactly and adds `InactiveRecipients` (beyond Postmark), each
address with its reason and since when, so a client need not parse the Message."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from api_service.errors import InactiveRecipients
from api_service.servers import service as servers
from api_service.suppressions import service as suppressions
from shared.constants import SuppressionOrigin, SuppressionReason
from tests.factories import ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio

SUPPRESSED = [
    ("bounced@example.net", SuppressionReason.HARD_BOUNCE, SuppressionOrigin.RECIPIENT, "HardBounce"),
    ("complained@example.net", SuppressionReason.SPAM_COMPLAINT, SuppressionOrigin.RECIPIENT, "SpamComplaint"),
    ("manual@example.net", SuppressionReason.MANUAL_SUPPRESSION, SuppressionOrigin.CUSTOMER, "ManualSuppression"),
    ("left@example.net", SuppressionReason.MANUAL_SUPPRESSION, SuppressionOrigin.RECIPIENT, "Unsubscribe"),
]


async def suppressed_server(app: FastAPI, client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    async with app.state.sessionmaker() as session, session.begin():
        row = await servers.get_server_or_raise(session=session, server_id=server.id)
        for email, reason, origin, _ in SUPPRESSED:
            await suppressions.suppress(session=session, server=row, stream="outbound", email=email, reason=reason, origin=origin)
    return server


class TestInactiveRecipients:
    async def test_406_lists_each_address_with_its_reason(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await suppressed_server(app, client)
        to = ", ".join(e.replace("manual@", "Manual@") for e, *_ in SUPPRESSED)
        response = await client.post("/email", json=message(From="app@example.org", To=to), headers=server.headers)
        assert response.status_code == 422
        body = response.json()
        addresses = [e.replace("manual@", "Manual@") for e, *_ in SUPPRESSED]
        assert body["ErrorCode"] == 406
        assert body["Message"] == InactiveRecipients(addresses).message  # Postmark's wording, unchanged
        assert [(i["Email"], i["Reason"]) for i in body["InactiveRecipients"]] == [
            (address, reason) for address, (*_, reason) in zip(addresses, SUPPRESSED, strict=True)
        ]
        assert all(datetime.fromisoformat(i["Since"]).tzinfo is not None for i in body["InactiveRecipients"])
        assert list(body) == ["ErrorCode", "Message", "InactiveRecipients"]

    async def test_batch_item_carries_the_list(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await suppressed_server(app, client)
        batch = [message(From="app@example.org", To="bounced@example.net"), message(From="app@example.org", To="fine@example.net")]
        results = (await client.post("/email/batch", json=batch, headers=server.headers)).json()
        assert [r["ErrorCode"] for r in results] == [406, 0]
        assert results[0]["InactiveRecipients"][0]["Reason"] == "HardBounce"
        assert "InactiveRecipients" not in results[1]

    async def test_some_inactive_is_still_200_without_the_list(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await suppressed_server(app, client)
        response = await client.post(
            "/email", json=message(From="app@example.org", To="bounced@example.net, fine@example.net"), headers=server.headers
        )
        assert response.status_code == 200
        assert "InactiveRecipients" not in response.json()
