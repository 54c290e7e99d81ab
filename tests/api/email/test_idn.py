"""Internationalised domains are accepted and kept in their IDNA form; non-ASCII local parts get a
clear error over REST."""

from __future__ import annotations

import httpx
import pytest

from api_service.mail.addresses import normalise_email, parse_address_list
from tests.api.conftest import SinkHandler, Worker
from tests.factories import create_domain, create_server, message


class TestNormalise:
    def test_domain_becomes_its_idna_form(self) -> None:
        assert normalise_email("user@bücher.de") == "user@xn--bcher-kva.de"

    def test_display_name_stays_unicode(self) -> None:
        [mailbox] = parse_address_list("Jörg <user@bücher.de>")
        assert (mailbox.name, mailbox.email) == ("Jörg", "user@xn--bcher-kva.de")


@pytest.mark.asyncio
class TestOverTheApi:
    async def test_idn_recipient_is_accepted_stored_and_delivered_in_idna_form(
        self, client: httpx.AsyncClient, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        server = await create_server(client)
        await create_domain(client, "example.org")
        response = await client.post("/email", json=message(From="app@example.org", To="Jörg <user@bücher.de>"), headers=server.headers)
        assert response.status_code == 200, response.text
        details = await client.get(f"/messages/outbound/{response.json()['MessageID']}/details", headers=server.headers)
        assert details.json()["Recipients"] == ["user@xn--bcher-kva.de"]
        assert "user@xn--bcher-kva.de" in details.json()["Body"]
        assert await worker.deliver() == 1
        [received] = sink[0].received
        assert received.rcpt_tos == ["user@xn--bcher-kva.de"]

    async def test_non_ascii_local_part_is_a_clear_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email", json=message(To="jörg@example.net"), headers={"X-Postmark-Server-Token": "POSTMARK_API_TEST"}
        )
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert "SMTPUTF8" in response.json()["Message"]
        assert "codec" not in response.json()["Message"]
