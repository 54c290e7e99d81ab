"""The worker holds at most one personalised copy per send in flight, not one per recipient of the batch
(a 100-recipient batch of a 10 MB message used to keep 100 signed copies until the batch ended)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from api_service.delivery import service as delivery
from api_service.models import Message
from api_service.tracking.personalise import Personalisation
from tests.api.conftest import SinkHandler, Worker
from tests.factories import ServerHandle, message

pytestmark = pytest.mark.asyncio


class Copies:
    """Counts the copies `prepare` made that are still alive (each one notes its own collection)."""

    def __init__(self) -> None:
        self.alive = 0
        self.most = 0
        self.made = 0

    def track(self, data: bytes) -> bytes:
        copies = self

        class Copy(bytes):
            def __del__(self) -> None:
                copies.alive -= 1

        copy = Copy(data)
        self.alive += 1
        self.made += 1
        self.most = max(self.most, self.alive)
        return copy


async def test_personalised_copies_are_released_once_sent(
    client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipients = [f"r{i}@example.net" for i in range(12)]
    # Open tracking: each recipient's copy carries its own pixel, so each is a personalised copy.
    body = message(From="app@example.org", To=", ".join(recipients), TrackOpens=True)
    response = await client.post("/email", json=body, headers=server.headers)
    assert response.status_code == 200, response.text
    copies = Copies()
    real_prepare = delivery.prepare

    def counted(message: Message, recipient: str, keys: dict[str, object], context: Personalisation) -> bytes:
        return copies.track(real_prepare(message, recipient, keys, context))  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "prepare", counted)
    concurrency = 2
    small = dataclasses.replace(worker, settings=worker.settings.model_copy(update={"delivery_concurrency": concurrency}))
    assert await small.deliver() == len(recipients)
    assert len(sink[0].received) == len(recipients)
    assert copies.made == len(recipients)
    assert copies.most <= concurrency  # at most one per send in flight
    assert copies.alive == 0
