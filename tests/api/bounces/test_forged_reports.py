"""Issue 22 row 4: a bounce report only the receiver of the mail could send. The return path is
signed for its message and recipient; a DSN counts only with the null sender, for a recipient of
that message, sent to that recipient's return path. Reports go in as the MX listener hands them
over (`/internal/bounce-reports` with the account token)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from api_service.bounces.verp import return_path
from api_service.config import Settings
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH
from tests.conftest import ACCOUNT_TOKEN
from tests.factories import ACCOUNT, ServerHandle, message, sending_server

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dsn"
DOMAIN = "bounces.postgate.test"
VICTIM = "victim@victim.example"
ATTACKER = "attacker@evil.example"


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await sending_server(client)


async def send(client: httpx.AsyncClient, server: ServerHandle, to: str = VICTIM) -> uuid.UUID:
    sent = await client.post("/email", json=message(To=to), headers=server.headers)
    assert sent.status_code == 200, sent.text
    return uuid.UUID(sent.json()["MessageID"])


def dsn(message_id: uuid.UUID, failed: str = VICTIM) -> bytes:
    raw = (FIXTURES / "postfix_user_unknown.eml").read_bytes().replace(b"gone@example.net", failed.encode())
    return raw.replace(b"{HEX}", message_id.hex.encode()).replace(b"{UUID}", str(message_id).encode()).replace(b"\n", b"\r\n")


async def report(client: httpx.AsyncClient, *, rcpt: str, raw: bytes, mail_from: str) -> int:
    body = {"RcptTo": [rcpt], "RawMessage": base64.b64encode(raw).decode(), "MailFrom": mail_from}
    response = await client.post(BOUNCE_REPORT_PATH, json=body, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    return int(response.json()["Matched"])


async def bounces(client: httpx.AsyncClient, server: ServerHandle) -> list[str]:
    found = (await client.get("/bounces?count=10&offset=0", headers=server.headers)).json()["Bounces"]
    return [f"{b['Type']} {b['Email']}" for b in found]


def signed(message_id: uuid.UUID, recipient: str = VICTIM, secret: str = ACCOUNT_TOKEN) -> str:
    return return_path(message_id=message_id, recipient=recipient, domain=DOMAIN, secret=secret)


@pytest.mark.asyncio
class TestForgedBounceReports:
    async def test_dsn_from_a_stranger_to_a_guessed_return_path_records_nothing(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        message_id = await send(client, server)
        guessed = f"pgb+{message_id.hex}@{DOMAIN}"  # all a Message-ID in a reply's References gives away
        assert await report(client, rcpt=guessed, raw=dsn(message_id), mail_from=ATTACKER) == 0
        assert await report(client, rcpt=guessed, raw=dsn(message_id), mail_from="") == 0
        assert await bounces(client, server) == []
        again = await client.post("/email", json=message(To=VICTIM), headers=server.headers)
        assert again.status_code == 200, again.text

    async def test_signed_return_path_without_the_null_sender_records_nothing(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        message_id = await send(client, server)
        assert await report(client, rcpt=signed(message_id), raw=dsn(message_id), mail_from=ATTACKER) == 0
        assert await bounces(client, server) == []

    async def test_a_recipient_cannot_bounce_another_with_its_own_return_path(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        message_id = await send(client, server, to=f"{VICTIM}, {ATTACKER}")
        own = signed(message_id, recipient=ATTACKER)  # the Return-Path header of the attacker's own copy
        assert await report(client, rcpt=own, raw=dsn(message_id, failed=VICTIM), mail_from="") == 0
        assert await bounces(client, server) == []

    async def test_dsn_naming_no_recipient_of_the_message_records_nothing(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send(client, server)
        stranger = "someone@else.example"
        assert await report(client, rcpt=signed(message_id, recipient=stranger), raw=dsn(message_id, failed=stranger), mail_from="") == 0
        assert await bounces(client, server) == []

    async def test_real_dsn_with_null_sender_to_the_signed_return_path_is_recorded(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        message_id = await send(client, server)
        assert await report(client, rcpt=signed(message_id), raw=dsn(message_id), mail_from="<>") == 1
        assert await bounces(client, server) == [f"HardBounce {VICTIM}"]
        again = await client.post("/email", json=message(To=VICTIM), headers=server.headers)
        assert again.json()["ErrorCode"] == 406

    async def test_a_return_path_signed_with_another_key_records_nothing(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send(client, server)
        assert await report(client, rcpt=signed(message_id, secret="not-this-installation"), raw=dsn(message_id), mail_from="") == 0
        assert await bounces(client, server) == []


class TestKeyRotation:
    def test_previous_keys_are_accepted_and_the_current_one_signs(self) -> None:
        settings = Settings(account_token="acct", verp_secret="new", verp_secret_previous="old, acct,")
        assert settings.verp_key == "new"
        assert settings.verp_keys == ["new", "old", "acct"]

    def test_without_a_verp_secret_the_account_token_is_the_key(self) -> None:
        assert Settings(account_token="acct").verp_keys == ["acct"]
        assert Settings(account_token="").verp_keys == []
