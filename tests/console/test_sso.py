"""Single sign-on against a local OpenID Connect provider over real HTTP: PKCE, state and nonce,
ID token checks, claim-to-role mapping, SSO_ONLY with a break-glass user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api_service.config import Settings
from api_service.console import service as console_service
from api_service.console import sso
from api_service.main import create_app
from api_service.models import AccountRole, ServerRole
from tests.console.conftest import sign_in
from tests.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.factories import create_server

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def running() -> Iterator[Provider]:
    with running_provider() as p:
        yield p


@pytest.fixture
def provider(running: Provider) -> Provider:
    """The module's provider (one RSA key for all its tests), reset for each test."""
    running.claims, running.tamper, running.tokens_issued = {}, "", 0
    running.codes.clear()
    sso._cache.clear()
    return running


@pytest_asyncio.fixture
async def sso_app(app: FastAPI, settings: Settings, provider: Provider) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def make(**changes: Any) -> tuple[FastAPI, httpx.AsyncClient]:
            changed = settings.model_copy(
                update={
                    "oidc_issuer": provider.issuer,
                    "oidc_client_id": CLIENT_ID,
                    "oidc_client_secret": CLIENT_SECRET,
                    "oidc_role_map": "groups:pg-admins=Admin,groups:pg-owners=Owner,support=Viewer:1",
                    **changes,
                }
            )
            application = create_app(changed)
            await stack.enter_async_context(application.router.lifespan_context(application))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://postgate.test")
            )
            return application, client

        yield make


async def sign_on(client: httpx.AsyncClient) -> httpx.Response:
    """The browser's part: to the provider over real HTTP, and back to the console's callback."""
    start = await client.get("/console/sso/start", params={"next": "/console/servers"})
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"]
    assert query["state"]
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(location)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert back.path == "/console/sso/callback"
    return await client.get(f"{back.path}?{back.query}")


def refused(response: httpx.Response) -> bool:
    """Sent back to the sign-in page with the reason in a short-lived cookie."""
    return response.headers.get("location") == "/console/sign-in" and "postgate_console_sso_error=" in response.headers.get(
        "set-cookie", ""
    )


class TestRoleMap:
    async def test_parse_and_map(self) -> None:
        rules = sso.parse_role_map("groups:a=Admin, realm_access.roles:o=Owner, v=Viewer:3, e=Editor:3", default_claim="groups")
        assert sso.map_role({"groups": ["a"]}, rules) == sso.MappedRole(role=AccountRole.ADMIN)
        assert sso.map_role({"groups": ["a"], "realm_access": {"roles": ["o"]}}, rules) == sso.MappedRole(role=AccountRole.OWNER)
        assert sso.map_role({"groups": ["v", "e"]}, rules) == sso.MappedRole(role=AccountRole.MEMBER, server_roles={3: ServerRole.EDITOR})
        assert sso.map_role({"groups": ["x"]}, rules) is None
        with pytest.raises(ValueError, match="role is"):
            sso.parse_role_map("a=Boss", default_claim="groups")


@pytest.mark.slow
class TestSignOn:
    async def test_mapped_group_signs_in_with_its_role(self, sso_app: Any, provider: Provider) -> None:
        provider.claims = {"preferred_username": "Alice", "email": "alice@example.com", "groups": ["pg-admins"]}
        _, client = await sso_app()
        assert 'id="sso"' in (await client.get("/console/sign-in")).text
        done = await sign_on(client)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/console/servers"
        assert (await client.get("/console/domains")).status_code == 200  # Admin
        assert (await client.get("/console/users")).status_code == 403

    async def test_role_follows_the_provider_at_each_sign_in(self, sso_app: Any, provider: Provider) -> None:
        _, client = await sso_app()
        server = await create_server(client, "S")
        assert server.id == 1
        provider.claims = {"preferred_username": "sue", "groups": ["support"]}
        await sign_on(client)
        assert (await client.get(f"/console/servers/{server.id}/activity")).status_code == 200
        assert (await client.get(f"/console/servers/{server.id}/settings")).status_code == 403
        provider.claims = {"preferred_username": "sue", "groups": ["pg-owners"]}
        await sign_on(client)
        assert (await client.get("/console/users")).status_code == 200

    async def test_no_mapped_role_is_refused(self, sso_app: Any, provider: Provider) -> None:
        provider.claims = {"preferred_username": "mallory", "groups": ["other"]}
        _, client = await sso_app()
        done = await sign_on(client)
        assert refused(done)
        assert "no role in this Postgate" in (await client.get("/console/sign-in")).text
        assert (await client.get("/console/servers")).status_code == 303

    @pytest.mark.parametrize("tamper", ["nonce", "aud", "key"])
    async def test_a_bad_id_token_is_refused(self, sso_app: Any, provider: Provider, tamper: str) -> None:
        provider.claims = {"preferred_username": "alice", "groups": ["pg-admins"]}
        provider.tamper = tamper
        _, client = await sso_app()
        done = await sign_on(client)
        assert refused(done), tamper
        assert (await client.get("/console/servers")).status_code == 303

    async def test_callback_needs_this_browsers_state_and_works_once(self, sso_app: Any, provider: Provider) -> None:
        provider.claims = {"preferred_username": "alice", "groups": ["pg-admins"]}
        app, client = await sso_app()
        start = await client.get("/console/sso/start")
        async with httpx.AsyncClient() as browser:
            back = urlsplit((await browser.get(start.headers["location"])).headers["location"])
        stranger = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://postgate.test")
        stray = await stranger.get(f"{back.path}?{back.query}")
        assert refused(stray)
        assert provider.tokens_issued == 0
        assert (await client.get(f"{back.path}?{back.query}")).headers["location"] == "/console/servers"
        client.cookies.set("postgate_console_sso", parse_qs(back.query)["state"][0], path="/console")
        assert refused(await client.get(f"{back.path}?{back.query}"))

    async def test_provider_error_shows_its_code_only(self, sso_app: Any) -> None:
        _, client = await sso_app()
        start = await client.get("/console/sso/start")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        answer = await client.get(
            "/console/sso/callback", params={"state": state, "error": "access_denied", "error_description": "Call 555"}
        )
        assert refused(answer)
        page = (await client.get("/console/sign-in")).text
        assert "access_denied" in page
        assert "Call 555" not in page

    async def test_sso_only_turns_passwords_off_but_for_the_break_glass_user(self, sso_app: Any, app: FastAPI) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await console_service.create_user(session=session, username="olga", password="correct horse battery", role=AccountRole.OWNER)
        _, client = await sso_app(sso_only=True, console_break_glass_user="olga")
        assert (await sign_in(client, "admin")).status_code == 401
        assert (await sign_in(client, "olga", "correct horse battery")).status_code == 303
