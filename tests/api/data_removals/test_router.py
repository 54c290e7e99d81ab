"""`/data-removals`: the request, the worker's bounded rounds, and what is left of the address afterwards."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import cast, func, select, update
from sqlalchemy.types import Text

from api_service.bounces.service import record_bounce
from api_service.config import Settings
from api_service.data_removals.service import PLACEHOLDER
from api_service.data_removals.tasks import process_due
from api_service.mail.address_match import address_pattern, postgres_pattern
from api_service.messages.scrub import mentions
from api_service.models import (
    Bounce,
    BounceDump,
    DataRemoval,
    IdempotencyKey,
    Message,
    MessageEvent,
    MessageRecipient,
    Suppression,
    WebhookDelivery,
)
from shared.constants import BounceType
from tests.api.conftest import Worker
from tests.factories import ACCOUNT, ServerHandle, message, sending_server

pytestmark = pytest.mark.asyncio

TARGET = "Gone.Person@Example.net"
OTHER = "stays@example.org"


async def request(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"RequestedBy": "privacy@example.com", "RequestedFor": TARGET, "NotifyWhenCompleted": False, **fields}
    response = await client.post("/data-removals", json=body, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def run_until_idle(app: FastAPI, settings: Settings) -> int:
    rounds = 0
    while await process_due(sessionmaker=app.state.sessionmaker, settings=settings):
        rounds += 1
        assert rounds < 100
    return rounds


async def bounce(app: FastAPI, server: ServerHandle, email: str, message_id: str, dump: bytes | None) -> None:
    async with app.state.sessionmaker() as session:
        await record_bounce(
            session=session,
            server_id=server.id,
            bounce_type=BounceType.HARD_BOUNCE,
            email=email,
            details=f"550 5.1.1 <{email}>: unknown",
            message_id=uuid.UUID(message_id),
            dump=dump,
        )
        await session.commit()


async def rows(app: FastAPI, model: Any) -> list[Any]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(model))).scalars().all())


class TestRequests:
    async def test_request_is_pending_until_the_worker_is_done(self, app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> None:
        created = await request(client)
        assert created["Status"] == "Pending"
        got = await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)
        assert (got.status_code, got.json()["ID"], got.json()["Status"]) == (200, created["ID"], "Pending")
        await run_until_idle(app, settings)
        done = (await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)).json()
        assert done["Status"] == "Done"
        assert done["CompletedAt"]
        [row] = await rows(app, DataRemoval)
        assert row.requested_for == ""  # only its digest is kept

    @pytest.mark.parametrize("field", ["RequestedFor", "RequestedBy"])
    async def test_an_invalid_address_returns_1300(self, client: httpx.AsyncClient, field: str) -> None:
        response = await client.post(
            "/data-removals", json={"RequestedBy": "a@example.com", "RequestedFor": "b@example.com", field: "nope"}, headers=ACCOUNT
        )
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1300)

    async def test_unknown_id_returns_404_code_1301(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/data-removals/999", headers=ACCOUNT)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 1301)

    async def test_a_server_token_is_refused(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.get("/data-removals/1", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (401, 10)


class TestRemoval:
    async def test_everything_about_the_address_is_deleted_or_anonymised(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings, worker: Worker
    ) -> None:
        server = await sending_server(client)
        hook = {"Url": "https://hooks.example.com/h", "MessageStream": "outbound", "Triggers": {"Bounce": {"Enabled": True}}}
        assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
        alone = (await client.post("/email", json=message(To=TARGET, Subject="Just you"), headers=server.headers)).json()["MessageID"]
        shared_body = message(To=OTHER, Cc=f"Gone Person <{TARGET}>", Subject=f"About {TARGET}", TextBody=f"Hi both, {TARGET.lower()}")
        sent = await client.post("/email", json=shared_body, headers={**server.headers, "Idempotency-Key": "k1"})
        shared = sent.json()["MessageID"]
        untouched = (await client.post("/email", json=message(To=OTHER, Subject="Not about them"), headers=server.headers)).json()
        assert await worker.deliver() == 4
        async with app.state.sessionmaker() as session:
            shared_row = await session.get(Message, uuid.UUID(shared))
            assert shared_row is not None
            shared_mime = shared_row.raw_mime
        await bounce(app, server, TARGET.lower(), alone, b"Final-Recipient: rfc822; " + TARGET.encode())
        await bounce(app, server, OTHER, shared, shared_mime)
        await client.post(
            "/message-streams/broadcast/suppressions", json={"Suppressions": [{"EmailAddress": TARGET}]}, headers=server.headers
        )

        created = await request(client)
        rounds = await run_until_idle(app, settings.model_copy(update={"data_removal_batch_size": 1}))
        assert rounds >= 2  # one message per round
        done = (await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)).json()
        assert done["Status"] == "Done"
        assert done["Removed"] == {
            "MessagesDeleted": 1,
            "MessagesAnonymised": 1,
            "BouncesDeleted": 1,
            "BouncesAnonymised": 1,
            "OpensAndClicksDeleted": 0,
            "SuppressionsDeleted": 2,
            "WebhookEventsDeleted": 1,
            "IdempotencyResponsesAnonymised": 1,
            "InboundMessagesDeleted": 0,
        }

        assert (await client.get(f"/messages/outbound/{alone}/details", headers=server.headers)).status_code == 404
        details = (await client.get(f"/messages/outbound/{shared}/details", headers=server.headers)).json()
        assert [r["Email"] for r in details["To"]] == [OTHER]
        assert details["Cc"] == [{"Email": PLACEHOLDER, "Name": ""}]
        assert sorted(details["Recipients"]) == sorted([OTHER, PLACEHOLDER])
        assert details["Subject"] == f"About {PLACEHOLDER}"
        assert [e["Recipient"] for e in details["MessageEvents"]] == [OTHER]
        dump = (await client.get(f"/messages/outbound/{shared}/dump", headers=server.headers)).json()["Body"]
        assert not mentions(dump.encode(), TARGET)
        assert "Gone Person" not in dump
        assert OTHER in dump
        kept = (await client.get(f"/messages/outbound/{untouched['MessageID']}/details", headers=server.headers)).json()
        assert kept["Subject"] == "Not about them"

        [other_bounce] = await rows(app, Bounce)
        assert other_bounce.email == OTHER
        [other_dump] = await rows(app, BounceDump)  # the deleted bounce's own dump went with it
        assert other_bounce.dump_id == other_dump.id
        assert not mentions(other_dump.body, TARGET)
        assert [s.email for s in await rows(app, Suppression)] == [OTHER]
        for delivery in await rows(app, WebhookDelivery):
            assert not mentions(str(delivery.payload).encode(), TARGET)
        for recipient in await rows(app, MessageRecipient):
            assert recipient.email.lower() != TARGET.lower()
        for event in await rows(app, MessageEvent):
            assert event.recipient.lower() != TARGET.lower()
        [key] = await rows(app, IdempotencyKey)
        assert TARGET.lower() not in str(key.response_body).lower()
        replay = await client.post("/email", json=shared_body, headers={**server.headers, "Idempotency-Key": "k1"})
        assert (replay.status_code, replay.json()["MessageID"], replay.json()["Cc"]) == (200, shared, PLACEHOLDER)

    async def test_a_message_being_delivered_waits_for_a_later_round(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        server = await sending_server(client)
        sent = (await client.post("/email", json=message(To=TARGET), headers=server.headers)).json()["MessageID"]
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(
                update(MessageRecipient).values(status="sending", lease_until=func.now() + func.make_interval(0, 0, 0, 0, 1))
            )
        created = await request(client)
        await run_until_idle(app, settings)
        assert (await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)).json()["Status"] == "Pending"
        assert (await client.get(f"/messages/outbound/{sent}/details", headers=server.headers)).status_code == 200
        async with app.state.sessionmaker() as session, session.begin():  # the delivery ends, and the retry time comes
            await session.execute(update(MessageRecipient).values(status="delivered", lease_until=None))
            await session.execute(update(DataRemoval).values(next_step_at=func.now()))
        await run_until_idle(app, settings)
        assert (await client.get(f"/data-removals/{created['ID']}", headers=ACCOUNT)).json()["Status"] == "Done"
        assert (await client.get(f"/messages/outbound/{sent}/details", headers=server.headers)).status_code == 404

    async def test_the_requester_is_told_without_naming_the_address(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        created = await request(client, NotifyWhenCompleted=True)
        await run_until_idle(app, settings)
        [notice] = await rows(app, Message)
        assert notice.recipients == ["privacy@example.com"]
        assert notice.subject == f"Data removal request {created['ID']} is done"
        assert not mentions(notice.raw_mime, TARGET)


class TestAddressPatterns:
    @pytest.mark.parametrize(
        "text",
        [
            "bob@example.com",
            "<Bob@Example.COM>",
            '"bob@example.com"',
            "jimbob@example.com",
            "bob@example.com.au",
            "bob@example.community",
            "x.bob@example.com",
            "bob@example.com.",
            "bob@example.com-x",
            "mail bob@example.com, ann@example.com",
        ],
    )
    async def test_postgresql_finds_what_python_finds(self, app: FastAPI, text: str) -> None:
        async with app.state.sessionmaker() as session:
            found = (await session.execute(select(cast(text, Text).op("~*")(postgres_pattern("bob@example.com"))))).scalar_one()
        assert found is bool(address_pattern("bob@example.com").search(text.encode()))
