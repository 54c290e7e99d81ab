"""Webhooks reach only public addresses (or WEBHOOK_ALLOWED_NETWORKS): refused when the URL is
saved, and checked again at every connection the sender makes, redirect hops included."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from api_service.core.guarded_http import guarded_client
from api_service.core.netguard import dns_resolver, parse_networks
from api_service.models import WebhookDelivery
from tests.api.conftest import Worker
from tests.api.core.dns_server import dns_server
from tests.api.webhooks.conftest import Endpoint
from tests.factories import ACCOUNT, ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8000/servers",
    "http://localhost:6379/",
    "http://api.localhost/",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://[::1]:8000/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0:8000/hook",
    "http://100.64.0.1/hook",
]


@pytest.fixture
def public_only(app: FastAPI) -> Iterator[None]:
    """The API as `make run` starts it: WEBHOOK_ALLOWED_NETWORKS empty."""
    saved = app.state.settings
    app.state.settings = saved.model_copy(update={"webhook_allowed_networks": ""})
    yield
    app.state.settings = saved


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    return server


class TestSavingUrls:
    @pytest.mark.parametrize("url", INTERNAL)
    async def test_webhook_to_an_internal_address_is_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, public_only: None, url: str
    ) -> None:
        response = await client.post("/webhooks", json={"Url": url}, headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 1354
        assert "public addresses" in response.json()["Message"]

    async def test_editing_a_webhook_to_an_internal_address_is_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, public_only: None
    ) -> None:
        created = (await client.post("/webhooks", json={"Url": "https://192.0.2.1.nip.invalid/hook"}, headers=server.headers)).json()
        response = await client.put(f"/webhooks/{created['ID']}", json={"Url": INTERNAL[0]}, headers=server.headers)
        assert response.json()["ErrorCode"] == 1354

    @pytest.mark.parametrize("field", ["BounceHookUrl", "DeliveryHookUrl", "OpenHookUrl", "ClickHookUrl", "InboundHookUrl"])
    async def test_server_hook_url_to_an_internal_address_is_refused(
        self, client: httpx.AsyncClient, server: ServerHandle, public_only: None, field: str
    ) -> None:
        edited = await client.put("/server", json={field: "http://169.254.169.254/"}, headers=server.headers)
        assert edited.status_code == 422
        assert edited.json()["ErrorCode"] == 606
        created = await client.post("/servers", json={"Name": f"With {field}", field: "http://127.0.0.1:8000/"}, headers=ACCOUNT)
        assert created.json()["ErrorCode"] == 606
        edited = await client.put(f"/servers/{server.id}", json={field: "http://10.1.2.3/"}, headers=ACCOUNT)
        assert edited.json()["ErrorCode"] == 606

    async def test_public_and_unresolvable_names_are_accepted(
        self, client: httpx.AsyncClient, server: ServerHandle, public_only: None
    ) -> None:
        # The address of a name that cannot be resolved now is checked when the hook is sent.
        for url in ("https://203.0.113.9.example/hook", "https://hooks.example.invalid/x", "http://8.8.8.8/hook"):
            response = await client.post("/webhooks", json={"Url": url}, headers=server.headers)
            assert response.status_code == 200, response.text

    async def test_allowed_networks_admit_an_on_premises_receiver(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        # The tests' settings allow 127.0.0.0/8, as an operator names a LAN for its receivers.
        response = await client.post("/webhooks", json={"Url": "http://127.0.0.1:9/hook"}, headers=server.headers)
        assert response.status_code == 200, response.text


async def delivered_event(client: httpx.AsyncClient, server: ServerHandle, worker: Worker, url: str) -> None:
    await client.put("/server", json={"DeliveryHookUrl": url}, headers=server.headers)
    sent = await client.post("/email", json=message(From="app@example.org", To="ok@example.net"), headers=server.headers)
    assert sent.status_code == 200, sent.text
    assert await worker.deliver() == 1


async def last_error(app: FastAPI) -> str:
    async with app.state.sessionmaker() as session:
        return str((await session.execute(select(WebhookDelivery.last_error))).scalar_one())


class TestSending:
    async def test_sender_does_not_connect_to_an_internal_address(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, first_endpoint: Endpoint
    ) -> None:
        # Saved while allowed (or pointed at an internal address by DNS later): refused when sent.
        await delivered_event(client, server, worker, first_endpoint.url)
        worker.settings = worker.settings.model_copy(update={"webhook_allowed_networks": ""})
        assert await worker.hooks() == 1
        assert first_endpoint.requests == []
        assert "non-public address 127.0.0.1" in await last_error(app)

    async def test_every_redirect_hop_is_checked(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        first_endpoint: Endpoint,
        second_endpoint: Endpoint,
    ) -> None:
        first_endpoint.status, first_endpoint.location = 307, second_endpoint.url
        await delivered_event(client, server, worker, first_endpoint.url)
        worker.settings = worker.settings.model_copy(update={"webhook_allowed_networks": "127.0.0.1/32"})
        await worker.hooks()
        assert len(first_endpoint.requests) == 1
        assert second_endpoint.requests == []
        assert "non-public address 127.0.0.2" in await last_error(app)

    async def test_redirect_to_the_metadata_address_is_refused(self, first_endpoint: Endpoint) -> None:
        first_endpoint.status, first_endpoint.location = 302, "http://169.254.169.254/latest/meta-data/"
        async with guarded_client(allowed=parse_networks("127.0.0.0/8"), resolver=None, timeout=5) as http:
            with pytest.raises(httpx.ConnectError, match=r"non-public address 169\.254\.169\.254"):
                await http.post(first_endpoint.url, content=b"{}")

    async def test_allowed_redirect_is_followed_with_the_body(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, first_endpoint: Endpoint, second_endpoint: Endpoint
    ) -> None:
        first_endpoint.status, first_endpoint.location = 308, second_endpoint.url
        await delivered_event(client, server, worker, first_endpoint.url)
        await worker.hooks()
        [request] = second_endpoint.requests
        assert request.method == "POST"
        assert b'"RecordType":"Delivery"' in request.body

    async def test_connects_to_the_checked_address_with_the_name_as_host(self, first_endpoint: Endpoint) -> None:
        port = first_endpoint.url.split(":")[2].split("/")[0]
        with dns_server() as (zone, address):
            zone.a("hooks.test", "127.0.0.1")
            zone.a("rebound.test", "10.0.0.1")
            resolver = dns_resolver(address, lifetime=2)
            async with guarded_client(allowed=parse_networks("127.0.0.1/32"), resolver=resolver, timeout=5) as http:
                response = await http.post(f"http://hooks.test:{port}/hook", content=b"{}")
                with pytest.raises(httpx.ConnectError, match=r"non-public address 10\.0\.0\.1"):
                    await http.post(f"http://rebound.test:{port}/hook", content=b"{}")
        assert response.status_code == 200
        [request] = first_endpoint.requests
        assert request.headers["Host"] == f"hooks.test:{port}"
