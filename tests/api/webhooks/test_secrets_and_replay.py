"""Beyond Postmark: a signing key per webhook, rotated with an overlap during which both
signatures are sent; past deliveries replayed, one or a time range, to a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import update

from api_service.models import Webhook
from tests.api.conftest import Hook, Receiver, Worker
from tests.factories import ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


def signed_by(secret: str, hook: Hook) -> bool:
    """What a receiver does: any v1 signature in the header made with this key."""
    signed = hook.headers["X-Postgate-Timestamp"].encode() + b"." + hook.body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, part.strip()) for part in hook.headers["X-Postgate-Signature"].split(","))


async def webhook_with_delivery(client: httpx.AsyncClient, server: ServerHandle, receiver: Receiver) -> int:
    created = await client.post(
        "/webhooks", json={"Url": receiver.url, "Triggers": {"Delivery": {"Enabled": True}}}, headers=server.headers
    )
    assert created.status_code == 200, created.text
    return int(created.json()["ID"])


async def deliver_one(client: httpx.AsyncClient, server: ServerHandle, worker: Worker) -> None:
    sent = await client.post("/email", json=message(From="app@example.org", To="ok@example.net"), headers=server.headers)
    assert sent.status_code == 200, sent.text
    assert await worker.deliver() == 1


class TestSecretRotation:
    async def test_rotation_signs_with_both_keys_during_the_overlap_then_only_the_new_one(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        server_secret = (await client.get("/server", headers=server.headers)).json()["WebhookSecret"]
        hook_id = await webhook_with_delivery(client, server, receiver)
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        assert signed_by(server_secret, receiver.hooks[-1])
        assert "," not in receiver.hooks[-1].headers["X-Postgate-Signature"]

        rotated = await client.post(f"/webhooks/{hook_id}/secret", json={"OverlapSeconds": 3600}, headers=server.headers)
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["Secret"]
        assert new_secret != server_secret
        assert rotated.json()["PreviousSecretValidUntil"].endswith("Z")
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        assert signed_by(new_secret, receiver.hooks[-1])
        assert signed_by(server_secret, receiver.hooks[-1])  # receivers still on the old key keep working

        async with app.state.sessionmaker() as session, session.begin():  # the overlap has passed
            await session.execute(update(Webhook).values(previous_secret_until=datetime.now(UTC) - timedelta(seconds=1)))
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        assert signed_by(new_secret, receiver.hooks[-1])
        assert not signed_by(server_secret, receiver.hooks[-1])

    async def test_a_second_rotation_keeps_the_first_rotated_key_for_the_overlap(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        first = (await client.post(f"/webhooks/{hook_id}/secret", headers=server.headers)).json()["Secret"]
        second = (await client.post(f"/webhooks/{hook_id}/secret", headers=server.headers)).json()["Secret"]
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        assert signed_by(second, receiver.hooks[-1])
        assert signed_by(first, receiver.hooks[-1])

    async def test_bad_overlap_and_other_servers_webhooks_are_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, receiver: Receiver
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        too_long = await client.post(f"/webhooks/{hook_id}/secret", json={"OverlapSeconds": 10**7}, headers=server.headers)
        assert too_long.status_code == 422
        assert too_long.json()["ErrorCode"] == 403
        other = await create_server(client, "Other")
        assert (await client.post(f"/webhooks/{hook_id}/secret", headers=other.headers)).status_code == 404
        assert (await client.post(f"/webhooks/{hook_id}/secret")).status_code == 401


class TestReplay:
    async def test_one_delivery_is_sent_again_with_its_first_payload(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        first = receiver.hooks[-1]
        delivery_id = int(first.headers["X-PM-Webhook-Trace-Id"].removeprefix("pg-"))

        replayed = await client.post(f"/webhooks/{hook_id}/replay", json={"DeliveryID": delivery_id}, headers=server.headers)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"ID": hook_id, "Replayed": 1}
        assert await worker.hooks() == 1
        again = receiver.hooks[-1]
        assert again.body == first.body
        assert again.headers["X-Postgate-Replay-Of"] == f"pg-{delivery_id}"
        assert again.headers["X-PM-Webhook-Trace-Id"] != first.headers["X-PM-Webhook-Trace-Id"]

    async def test_a_time_range_is_replayed_and_replays_are_not_replayed_again(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        for _ in range(3):
            await deliver_one(client, server, worker)
        assert await worker.hooks() == 3
        now = datetime.now(UTC)
        window = {"From": (now - timedelta(hours=1)).isoformat(), "To": (now + timedelta(minutes=1)).isoformat()}
        assert (await client.post(f"/webhooks/{hook_id}/replay", json=window, headers=server.headers)).json()["Replayed"] == 3
        assert await worker.hooks() == 3
        assert (await client.post(f"/webhooks/{hook_id}/replay", json=window, headers=server.headers)).json()["Replayed"] == 3
        assert len(receiver.hooks) == 6  # the second replay is queued, not yet sent

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"From": "2026-12-01T00:00:00"},
            {"From": "2026-12-01T00:00:00", "To": "2026-12-02T00:00:00"},
            {"From": "2026-12-01T00:00:00Z", "To": "2026-12-30T00:00:00Z"},
            {"From": "2026-12-02T00:00:00Z", "To": "2026-12-01T00:00:00Z"},
            {"DeliveryID": 999999},
        ],
    )
    async def test_bad_replay_requests_get_a_clear_error(
        self, client: httpx.AsyncClient, server: ServerHandle, receiver: Receiver, body: dict[str, object]
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        answer = await client.post(f"/webhooks/{hook_id}/replay", json=body, headers=server.headers)
        assert answer.status_code == 422
        assert answer.json()["ErrorCode"] == 403
        assert answer.json()["Message"]

    async def test_another_servers_deliveries_cannot_be_replayed(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, receiver: Receiver
    ) -> None:
        hook_id = await webhook_with_delivery(client, server, receiver)
        await deliver_one(client, server, worker)
        assert await worker.hooks() == 1
        delivery_id = int(receiver.hooks[-1].headers["X-PM-Webhook-Trace-Id"].removeprefix("pg-"))
        other = await create_server(client, "Other")
        their_hook = await webhook_with_delivery(client, other, receiver)
        mine = await client.post(f"/webhooks/{hook_id}/replay", json={"DeliveryID": delivery_id}, headers=other.headers)
        assert mine.status_code == 404
        theirs = await client.post(f"/webhooks/{their_hook}/replay", json={"DeliveryID": delivery_id}, headers=other.headers)
        assert theirs.status_code == 422
