"""Every way a recipient is suppressed or reactivated fires the same SubscriptionChange webhook."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.conftest import Receiver, Worker
from tests.factories import ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient, receiver: Receiver) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    hook = {"Url": receiver.url, "Triggers": {"SubscriptionChange": {"Enabled": True}}}
    assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
    return server


async def changes(worker: Worker, receiver: Receiver) -> list[dict[str, Any]]:
    await worker.hooks()
    found = [h.json for h in receiver.hooks if h.json["RecordType"] == "SubscriptionChange"]
    receiver.hooks.clear()
    return found


async def hard_bounce(client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> tuple[str, dict[str, Any]]:
    sent = await client.post("/email", json=message(From="app@example.org", To="hard@example.net", Tag="t1"), headers=server.headers)
    await worker.deliver()
    [bounce] = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
    return str(sent.json()["MessageID"]), bounce


class TestSubscriptionChanges:
    async def test_hard_bounce_then_activation(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        message_id, bounce = await hard_bounce(client, server, worker)
        [suppressed] = await changes(worker, receiver)
        assert suppressed["SuppressSending"] is True
        assert suppressed["Origin"] == "Recipient"
        assert suppressed["SuppressionReason"] == "HardBounce"
        assert suppressed["MessageID"] == message_id
        assert suppressed["Tag"] == "t1"

        activated = await client.put(f"/bounces/{bounce['ID']}/activate", headers=server.headers)
        assert activated.json()["Bounce"]["Inactive"] is False
        [lifted] = await changes(worker, receiver)
        assert (lifted["SuppressSending"], lifted["Origin"], lifted["Recipient"]) == (False, "Customer", "hard@example.net")
        again = await client.get(f"/bounces/{bounce['ID']}", headers=server.headers)
        assert again.json()["Inactive"] is False

    async def test_suppressions_api_add_and_delete(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        body = {"Suppressions": [{"EmailAddress": "someone@example.net"}]}
        await client.post("/message-streams/outbound/suppressions", json=body, headers=server.headers)
        [added] = await changes(worker, receiver)
        assert (added["SuppressSending"], added["Origin"], added["SuppressionReason"]) == (True, "Customer", "ManualSuppression")
        await client.post("/message-streams/outbound/suppressions/delete", json=body, headers=server.headers)
        [removed] = await changes(worker, receiver)
        assert (removed["SuppressSending"], removed["Origin"]) == (False, "Customer")

    async def test_deleting_a_hard_bounce_suppression_reactivates_the_bounce(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        _, bounce = await hard_bounce(client, server, worker)
        assert bounce["Inactive"] is True
        await changes(worker, receiver)
        body = {"Suppressions": [{"EmailAddress": "hard@example.net"}]}
        await client.post("/message-streams/outbound/suppressions/delete", json=body, headers=server.headers)
        [removed] = await changes(worker, receiver)
        assert removed["SuppressSending"] is False
        assert (await client.get(f"/bounces/{bounce['ID']}", headers=server.headers)).json()["Inactive"] is False
        listed = await client.get("/bounces?count=10&offset=0&inactive=false", headers=server.headers)
        assert [b["ID"] for b in listed.json()["Bounces"]] == [bounce["ID"]]
