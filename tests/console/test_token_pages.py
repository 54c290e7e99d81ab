"""The console's API-token pages (create shown once, revoke at once) and its audit log."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.console.conftest import Console, sign_in
from tests.factories import create_server

pytestmark = pytest.mark.asyncio

SECRET = re.compile(r'<code class="secret" id="new-token">([^<]+)</code>')


class TestServerTokenPage:
    async def test_create_shows_the_token_once_and_revoke_stops_it(self, console: Console) -> None:
        server = await create_server(console.client, "Shop")
        made = await console.post(f"/console/servers/{server.id}/tokens", {"name": "deploy", "scope": "send", "expires": ""})
        assert made.status_code == 201, made.text
        found = SECRET.search(made.text)
        assert found
        token = found.group(1)
        listed = await console.get(f"/console/servers/{server.id}/tokens")
        assert "deploy" in listed.text
        assert token not in listed.text
        assert f"…{token[-4:]}" in listed.text
        headers = {"X-Postmark-Server-Token": token, "Accept": "application/json"}
        assert (await console.client.get("/server", headers=headers)).json()["ErrorCode"] == 1470  # send-only
        revoked = await console.post(f"/console/servers/{server.id}/tokens/revoke", {"name": "deploy"})
        assert revoked.status_code == 303
        assert (await console.client.get("/server", headers=headers)).status_code == 401

    async def test_bad_name_or_expiry_is_shown_on_the_page(self, console: Console) -> None:
        server = await create_server(console.client, "Shop")
        refused = await console.post(f"/console/servers/{server.id}/tokens", {"name": "x", "scope": "full", "expires": "2001-01-01T00:00"})
        assert refused.status_code == 422
        assert "Expires must be in the future" in refused.text

    async def test_account_tokens(self, console: Console) -> None:
        made = await console.post("/console/account-tokens", {"name": "terraform", "scope": "read"})
        assert made.status_code == 201, made.text
        found = SECRET.search(made.text)
        assert found
        reader = {"X-Postmark-Account-Token": found.group(1), "Accept": "application/json"}
        assert (await console.client.get("/servers?count=5&offset=0", headers=reader)).status_code == 200
        assert (await console.post("/console/account-tokens/revoke", {"name": "terraform"})).status_code == 303
        assert (await console.client.get("/servers?count=5&offset=0", headers=reader)).status_code == 401


class TestAuditPage:
    async def test_console_changes_and_failed_sign_ins_are_searchable_and_exported(
        self, client: httpx.AsyncClient, console: Console
    ) -> None:
        server = await create_server(console.client, "Shop")
        await console.post(f"/console/servers/{server.id}/color", {"color": "red"})
        await console.post(f"/console/servers/{server.id}/tokens", {"name": "ci", "scope": "full"})
        async with httpx.AsyncClient(transport=client._transport, base_url="http://postgate.test") as stranger:
            assert (await sign_in(stranger, "mallory", "guess")).status_code == 401

        page = await console.get("/console/audit", actor="user:admin")
        assert page.status_code == 200
        assert "server-token.create" in page.text
        assert "mallory" not in page.text
        failed = await console.get("/console/audit", action="sign-in", actor="mallory")
        assert "failed" in failed.text

        exported = await console.get("/console/audit/export", format="jsonl", actor="user:admin")
        assert exported.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in exported.text.splitlines()]
        color = next(e for e in events if e["target_type"] == "server" and e["before"])
        assert (color["before"], color["after"]) == ({"Color": "purple"}, {"Color": "red"})
        assert [e["action"] for e in events if e["target_type"] == "server-token"] == ["server-token.create"]
        csv_export = await console.get("/console/audit/export", format="csv")
        assert csv_export.text.startswith("id,occurred_at,actor,action")
