"""API tokens and the audit log in a real browser (the stack of test_browser): make a send-only
token (shown once), revoke it and see the API refuse it within a second, find both in the audit log.
Screenshots: tests/console/screenshots/tokens.png and audit.png (the README's copies)."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import ACCOUNT_TOKEN
from tests.console.test_browser import (  # the browser, the live API and their checks
    Stack,
    _nothing_from_other_hosts,
    browser,
    page,
    seen,
    shot,
    stack,
)

__all__ = ["_nothing_from_other_hosts", "browser", "page", "seen", "stack"]
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_send_token_made_revoked_and_audited(page: Page, stack: Stack) -> None:
    await page.goto("/console/sign-in")
    await page.get_by_label("Password or account token").fill(ACCOUNT_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Name").fill("Acme shop")
    await page.get_by_role("button", name="Create server").click()
    server_token = await page.locator("#server-token").inner_text()
    server_id = (await stack.api("GET", "/server", server_token=server_token)).json()["ID"]

    await page.goto(f"/console/servers/{server_id}/tokens")
    await page.get_by_label("Name").fill("checkout")
    await page.get_by_label("Scope").select_option("send")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_role("heading", name="Token checkout is ready")).to_be_visible()
    token = await page.locator("#new-token").inner_text()
    await page.get_by_role("link", name="Back to the tokens").click()
    await page.get_by_label("Name").fill("dashboard")
    await page.get_by_label("Scope").select_option("read")
    await page.get_by_role("button", name="Create token").click()
    await page.get_by_role("link", name="Back to the tokens").click()
    await expect(page.get_by_role("cell", name="checkout")).to_be_visible()
    assert token not in await page.content()
    await shot(page, "tokens")

    headers = {"X-Postmark-Server-Token": token, "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        assert (await client.get("/server", headers=headers)).json()["ErrorCode"] == 1470
        await page.locator("tr", has_text="checkout").get_by_role("button", name="Revoke").click()
        await expect(page.get_by_text("The token is revoked")).to_be_visible()
        started = time.monotonic()
        while (await client.get("/server", headers=headers)).status_code != 401:
            assert time.monotonic() - started < 1.0
        assert (await client.get("/server", headers={"X-Postmark-Server-Token": server_token})).status_code == 200

    await page.goto("/console/audit")
    await expect(page.get_by_role("cell", name="server-token.revoke")).to_be_visible()
    await expect(page.get_by_role("cell", name="server-token.create").first).to_be_visible()
    await shot(page, "audit")
