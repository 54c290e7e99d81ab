"""Concurrent submissions share one API call and one transaction, and each client still gets its own
reply: 250 only once its message is committed, its own bounce when its message breaks a rule, 451
when the call fails. Real clients, the real gateway, the real API and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.db import async_database_url
from smtp_service import metrics
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway, SmtpServerHandle

pytestmark = pytest.mark.slow

SIGNED = "Sender <sender@example.com>"
UNSIGNED = "Stranger <stranger@elsewhere.example>"


def mail(number: int, *, sender: str = SIGNED, subject: str = "Hello over SMTP") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"to-{number}@example.net"
    message["Subject"] = subject
    message["Message-ID"] = f"<batch-{number}@app.example>"
    message.set_content(f"Message number {number}.")
    return message


async def send(gateway: Gateway, token: str, message: EmailMessage) -> tuple[int, str]:
    """One connection, one message: the reply code and text of DATA."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.port, start_tls=False, timeout=30)
    await client.connect()
    try:
        await client.login(token, token)
        try:
            response = await client.send_message(message)
        except aiosmtplib.SMTPDataError as exc:
            return exc.code, exc.message
        return 250, response[1]
    finally:
        await client.quit()


def outbound(api: str, server: SmtpServerHandle) -> list[dict[str, Any]]:
    response = httpx.get(f"{api}/messages/outbound?count=500&offset=0", headers=server.headers)
    messages: list[dict[str, Any]] = response.json()["Messages"]
    return messages


def bounces(api: str, server: SmtpServerHandle) -> list[dict[str, Any]]:
    response = httpx.get(f"{api}/bounces?count=500&offset=0&type=SMTPApiError", headers=server.headers)
    found: list[dict[str, Any]] = response.json()["Bounces"]
    return found


def api_calls() -> tuple[float, float]:
    """How many API calls the gateway made with messages, and how many messages they carried."""
    calls = metrics.REGISTRY.get_sample_value("postgate_smtp_batch_messages_count") or 0.0
    messages = metrics.REGISTRY.get_sample_value("postgate_smtp_batch_messages_sum") or 0.0
    return calls, messages


def sql(database_url: str, *statements: str) -> None:
    async def run() -> None:
        engine = create_async_engine(async_database_url(database_url))
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def faults(database_url: str) -> Iterator[None]:
    """Triggers on the messages table, chosen by subject: 'slow' holds its transaction for a second
    (so that the messages sent meanwhile gather into the next call), 'poison' fails its INSERT and
    'commit-fails' fails the COMMIT of the transaction that holds it."""
    sql(
        database_url,
        """CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.subject = 'slow' THEN PERFORM pg_sleep(1); RETURN NEW; END IF;
             RAISE EXCEPTION 'test fault for %', NEW.subject;
           END $$""",
        "CREATE TRIGGER test_slow BEFORE INSERT ON messages FOR EACH ROW WHEN (NEW.subject IN ('slow', 'poison')) EXECUTE FUNCTION test_fault()",
        """CREATE CONSTRAINT TRIGGER test_commit AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED
           FOR EACH ROW WHEN (NEW.subject = 'commit-fails') EXECUTE FUNCTION test_fault()""",
    )
    try:
        yield
    finally:
        sql(
            database_url,
            "DROP TRIGGER test_slow ON messages",
            "DROP TRIGGER test_commit ON messages",
            "DROP FUNCTION test_fault()",
        )


async def all_at_once(gateway: Gateway, sends: list[tuple[str, EmailMessage]]) -> list[tuple[int, str]]:
    """Each (token, message) on a connection of its own, all at the same time."""
    return list(await asyncio.gather(*(send(gateway, token, message) for token, message in sends)))


async def behind_a_slow_message(
    gateway: Gateway, token: str, messages: list[EmailMessage]
) -> tuple[tuple[int, str], list[tuple[int, str]]]:
    """Send a message that holds the API for a second, and meanwhile `messages` on connections of
    their own: with one call at a time, they all wait for it and leave together, in one call."""
    slow = asyncio.create_task(send(gateway, token, mail(0, subject="slow")))
    await asyncio.sleep(0.3)
    replies = await asyncio.gather(*(send(gateway, token, message) for message in messages))
    return await slow, list(replies)


class TestBatching:
    def test_concurrent_good_and_unsigned_messages_each_get_their_own_outcome(
        self, batching_gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        calls_before, carried_before = api_calls()
        messages = [mail(n, sender=UNSIGNED if n % 3 == 0 else SIGNED) for n in range(1, 31)]
        replies = asyncio.run(all_at_once(batching_gateway, [(smtp_server.token, m) for m in messages]))

        assert [code for code, _ in replies] == [250] * len(messages)
        queued_ids = [reply.removeprefix("2.0.0 Ok: queued as ") for _, reply in replies]
        assert len(set(queued_ids)) == len(messages)
        calls, carried = api_calls()
        assert carried - carried_before == len(messages)
        assert calls - calls_before < len(messages)  # they shared calls

        stored = {m["MessageID"]: m for m in outbound(clean_live_api, smtp_server)}
        assert set(stored) == set(queued_ids)  # each stored once, under the ID its client was told
        unsigned = {queued for queued, m in zip(queued_ids, messages, strict=True) if m["From"] == UNSIGNED}
        bounced = bounces(clean_live_api, smtp_server)
        assert {b["MessageID"] for b in bounced} == unsigned
        assert all("not a Sender Signature" in b["Details"] for b in bounced)
        for queued, message in zip(queued_ids, messages, strict=True):
            assert stored[queued]["Recipients"] == [message["To"]]

    def test_servers_sharing_a_call_each_get_their_own_messages(
        self, batching_gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        created = httpx.post(f"{clean_live_api}/servers", json={"Name": "Second", "SmtpApiActivated": True}, headers=account).json()
        second = SmtpServerHandle(
            id=created["ID"], token=created["ApiTokens"][0], headers={"X-Postmark-Server-Token": created["ApiTokens"][0]}
        )
        tokens = [smtp_server.token if n % 2 else second.token for n in range(1, 21)]
        replies = asyncio.run(all_at_once(batching_gateway, [(token, mail(n)) for n, token in enumerate(tokens, start=1)]))

        assert [code for code, _ in replies] == [250] * len(tokens)
        for server in (smtp_server, second):
            expected = {f"to-{n}@example.net" for n, token in enumerate(tokens, start=1) if token == server.token}
            assert {m["Recipients"][0] for m in outbound(clean_live_api, server)} == expected

    def test_a_message_failing_in_the_database_fails_alone(
        self, batching_gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str, faults: None
    ) -> None:
        messages = [mail(n, subject="poison" if n == 3 else "fine") for n in range(1, 7)]
        slow, replies = asyncio.run(behind_a_slow_message(batching_gateway, smtp_server.token, messages))

        assert slow[0] == 250
        codes = [code for code, _ in replies]
        assert codes == [250, 250, 451, 250, 250, 250]
        assert replies[2][1].startswith("4.3.0")
        stored = outbound(clean_live_api, smtp_server)
        assert sorted(m["Recipients"][0] for m in stored) == sorted(
            ["to-0@example.net"] + [m["To"] for m in messages if m["Subject"] == "fine"]
        )

    def test_a_failing_commit_gives_every_member_451_and_stores_none(
        self, batching_gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str, faults: None
    ) -> None:
        messages = [mail(n, subject="commit-fails" if n == 4 else "fine") for n in range(1, 7)]
        slow, replies = asyncio.run(behind_a_slow_message(batching_gateway, smtp_server.token, messages))

        assert slow[0] == 250
        assert [code for code, _ in replies] == [451] * len(messages)
        assert all(reply.startswith("4.3.0") for _, reply in replies)
        assert [m["Recipients"] for m in outbound(clean_live_api, smtp_server)] == [["to-0@example.net"]]

        # The clients retry; the well-behaved messages are stored, once each.
        retried = asyncio.run(all_at_once(batching_gateway, [(smtp_server.token, m) for m in messages if m["Subject"] == "fine"]))
        assert [code for code, _ in retried] == [250] * 5
        assert len(outbound(clean_live_api, smtp_server)) == 6


async def auth_reply(gateway: Gateway, token: str) -> int:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.port, start_tls=False, timeout=30)
    await client.connect()
    try:
        await client.login(token, token)
    except aiosmtplib.SMTPAuthenticationError as exc:
        return exc.code
    finally:
        client.close()
    return 235


class TestAuthBatching:
    def test_concurrent_auths_each_get_their_own_answer(
        self, batching_gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str
    ) -> None:
        account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        off = httpx.post(f"{clean_live_api}/servers", json={"Name": "Off"}, headers=account).json()["ApiTokens"][0]
        tokens = [smtp_server.token, "not-a-token", off] * 8
        before = metrics.REGISTRY.get_sample_value("postgate_smtp_auth_batch_tokens_count") or 0.0

        async def all_auths() -> list[int]:
            return list(await asyncio.gather(*(auth_reply(batching_gateway, token) for token in tokens)))

        codes = asyncio.run(all_auths())
        assert codes == [235, 535, 535] * 8
        calls = (metrics.REGISTRY.get_sample_value("postgate_smtp_auth_batch_tokens_count") or 0.0) - before
        assert calls < len(tokens)  # checked together, each answered on its own
