"""Roles, two-factor and single sign-on in a real browser (Debian's Chromium driven by Playwright)
against the real API on a loopback port, with a local OpenID Connect provider over real HTTP.

A Viewer cannot reach an edit form or a token (neither by the page nor by a direct POST); a user
sets up an authenticator app and signs in with a code; a user signs in through the provider; a
passkey is registered and used through Chromium's virtual authenticator (CDP). Screenshots go to
tests/console/screenshots/ (git-ignored); docs/screenshots/ holds copies for the README.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import text

from api_service.config import Settings
from api_service.console import service as console_service
from api_service.console import sso
from api_service.db import create_engine, create_sessionmaker
from api_service.main import create_app
from api_service.models import AccountRole, Base, ServerRole
from tests.compat.conftest import free_port
from tests.conftest import ACCOUNT_TOKEN
from tests.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider

# Importing test_browser skips this module too when Playwright or Chromium is missing.
from tests.console.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery"


@dataclass
class Stack:
    url: str
    settings: Settings
    database_url: str
    provider: Provider
    state: dict[str, Any] = field(default_factory=dict)

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.request(method, path, headers={"X-Postmark-Account-Token": ACCOUNT_TOKEN}, **kwargs)
        assert response.status_code == 200, response.text
        return response

    async def user(self, name: str, role: AccountRole | ServerRole, servers: list[int] | None = None) -> None:
        engine = create_engine(self.database_url, pool_size=1, max_overflow=0)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await console_service.create_user(session=session, username=name, password=PASSWORD, role=role, server_ids=servers)
        finally:
            await engine.dispose()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider() as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(settings: Settings, database_url: str, provider: Provider) -> AsyncIterator[Stack]:
    sso._cache.clear()
    live = settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_role_map": "groups:pg-admins=Admin",
            "oidc_button_label": "Sign in with Keycloak",
        }
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(live), host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.05)
    try:
        # `localhost`, not 127.0.0.1: WebAuthn refuses an IP address as the relying party's ID.
        yield Stack(url=f"http://localhost:{port}", settings=live, database_url=database_url, provider=provider)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine = create_engine(database_url, pool_size=1, max_overflow=0)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("the browser tests need Chromium")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"]
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    SCREENSHOTS.mkdir(exist_ok=True)
    context = await browser.new_context(base_url=stack.url, viewport={"width": 1360, "height": 860})
    yield await context.new_page()
    await context.close()


async def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    await page.goto("/console/sign-in")
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password or account token").fill(password)
    await page.get_by_role("button", name=re.compile("^Sign in")).last.click()


async def test_owner_invites_and_sees_the_users_page(page: Page, stack: Stack) -> None:
    server = (await stack.api("POST", "/servers", json={"Name": "Acme production"})).json()
    stack.state["server_id"] = server["ID"]
    stack.state["token"] = server["ApiTokens"][0]
    await stack.api("POST", "/senders", json={"FromEmail": "billing@example.com", "Name": "Acme Billing"})
    for subject, to in (("Your receipt", "reader@example.net"), ("Welcome to Acme", "new.customer@example.net")):
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
            sent = await client.post(
                "/email",
                headers={"X-Postmark-Server-Token": stack.state["token"]},
                json={"From": "billing@example.com", "To": to, "Subject": subject, "TextBody": "Hello"},
            )
        assert sent.status_code == 200, sent.text
    await stack.user("vera", ServerRole.VIEWER, [server["ID"]])
    await stack.user("eddie", ServerRole.EDITOR, [server["ID"]])
    await sign_in(page, "admin", ACCOUNT_TOKEN)
    await page.goto("/console/users")
    await page.locator("#invite").get_by_label("User name").fill("nina")
    await page.locator("#invite").get_by_label("Email").fill("nina@example.com")
    await page.locator("#invite").get_by_label("Role").select_option("editor")
    await page.locator("#invite").get_by_label("Acme production").check()
    await page.get_by_role("button", name="Send the invitation").click()
    await expect(page.get_by_text("The invitation is mailed.")).to_be_visible()
    await expect(page.locator('tr[data-user="nina"]')).to_contain_text("Invited")
    await page.screenshot(path=str(SCREENSHOTS / "users.png"), full_page=True)


async def test_viewer_cannot_reach_an_edit_form_or_a_token(page: Page, stack: Stack) -> None:
    server_id = stack.state["server_id"]
    await sign_in(page, "vera")
    await expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Create server")).to_have_count(0)
    assert stack.state["token"][-4:] not in await page.content()
    await page.goto(f"/console/servers/{server_id}/activity")
    nav = page.get_by_role("navigation", name="Server")
    await expect(nav.get_by_role("link", name="Activity")).to_be_visible()
    for hidden in ("Settings", "Webhooks", "Templates", "Suppressions", "Streams"):
        await expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    await page.screenshot(path=str(SCREENSHOTS / "viewer-activity.png"))
    answer = await page.goto(f"/console/servers/{server_id}/settings")
    assert answer is not None
    assert answer.status == 403
    await expect(page.get_by_text("Your role does not allow this")).to_be_visible()
    assert stack.state["token"] not in await page.content()
    # A forged form post with the Viewer's own session and CSRF token is refused as well.
    await page.goto(f"/console/servers/{server_id}/activity")
    csrf = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    for path in ("settings/smtp", "webhooks", "delete"):
        posted = await page.request.post(
            f"/console/servers/{server_id}/{path}", form={"csrf_token": csrf or "", "url": "https://hooks.example/x"}, max_redirects=0
        )
        assert posted.status == 403, path


async def test_totp_enrolment_and_sign_in(page: Page, stack: Stack) -> None:
    await sign_in(page, "eddie")
    await page.goto("/console/account/two-factor")
    await expect(page.locator("#totp-qr svg")).to_be_visible()
    await page.screenshot(path=str(SCREENSHOTS / "two-factor-setup.png"), full_page=True)
    secret = await page.locator("#totp-secret").inner_text()
    await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()

    await sign_in(page, "eddie")
    await expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    await page.screenshot(path=str(SCREENSHOTS / "two-factor-sign-in.png"))
    # The code of the next time step: the current one was used by the enrolment, and a code works once.
    await page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    await expect(page.locator(".who")).to_contain_text("eddie")


async def test_oidc_sign_in_against_the_local_provider(page: Page, stack: Stack) -> None:
    stack.provider.claims = {"preferred_username": "alice", "email": "alice@example.com", "groups": ["pg-admins"]}
    await page.goto("/console/sign-in")
    await page.screenshot(path=str(SCREENSHOTS / "sign-in-sso.png"))
    await page.get_by_role("link", name="Sign in with Keycloak").click()
    await expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    await expect(page.locator(".who")).to_contain_text("alice")
    await expect(page.get_by_role("link", name="Domains")).to_be_visible()  # Admin, from the group


async def test_passkey_through_the_virtual_authenticator(page: Page, stack: Stack) -> None:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    await stack.user("pat", AccountRole.ADMIN)
    await sign_in(page, "pat")
    await page.goto("/console/account/two-factor")
    await page.get_by_label("Name").fill("Test laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.get_by_text("The passkey is added")).to_be_visible()
    await expect(page.locator("#passkeys")).to_contain_text("Test laptop")
    await page.get_by_role("button", name="Sign out").click()

    await sign_in(page, "pat")
    await expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    await page.get_by_role("button", name="Use a passkey").click()
    await expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    await expect(page.locator(".who")).to_contain_text("pat")
