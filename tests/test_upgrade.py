"""Upgrades: a database populated at the first revision goes up one revision at a time to head with
its data intact and the API working on it; the new revision goes down and up again; replicas that
migrate at once migrate once; and a migration that meets a held lock gives up instead of queueing."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from api_service.db import async_database_url
from api_service.devtools.embedded_db import drop_database, ensure_database, with_database
from api_service.servers.tokens import token_digest
from tests.e2e.conftest import free_port, wait_healthy
from tests.test_migrations import config

ROOT = Path(__file__).resolve().parent.parent
SERVER_TOKEN = "6f0e61a4-0b4e-4c43-9d3c-8d7a3c1c0a11"
MESSAGE_ID = "5b6a1f4e-2c1d-4e8f-9a0b-1c2d3e4f5a6b"
MESSAGES = 2_000

# Rows as the 0001 schema held them, written in SQL as an old version of Postgate would have.
POPULATE_0001 = (
    """
    INSERT INTO servers (id, name, color, smtp_api_activated, raw_email_enabled, delivery_type, inbound_hash, inbound_hook_url,
                         bounce_hook_url, open_hook_url, delivery_hook_url, click_hook_url, post_first_open_only, inbound_domain,
                         inbound_spam_threshold, track_opens, track_links, include_bounce_content_in_hook, enable_smtp_api_error_hooks,
                         webhook_secret)
    VALUES (1, 'Legacy', 'purple', true, false, 'Live', 'abc123', '', 'https://hooks.example.com/b', '', '', '', false, '', 0, false,
            'None', false, false, 'legacy-secret')
    """,
    "SELECT setval(pg_get_serial_sequence('servers', 'id'), 1)",
    "INSERT INTO server_tokens (server_id, token_sha256, hint) VALUES (1, :digest, :hint)",
    """
    INSERT INTO message_streams (server_id, stream_id, name, description, stream_type)
    VALUES (1, 'outbound', 'Default Transactional Stream', '', 'Transactional'),
           (1, 'inbound', 'Default Inbound Stream', '', 'Inbound'),
           (1, 'broadcast', 'Default Broadcast Stream', '', 'Broadcasts')
    """,
    """
    INSERT INTO messages (id, server_id, message_stream, source, status, from_header, from_email, envelope_from, subject, tag, "to", cc, bcc,
                          recipients, metadata, attachments, track_opens, track_links, sandboxed, raw_mime, created_at)
    SELECT CASE WHEN g = 1 THEN CAST(:message_id AS uuid) ELSE gen_random_uuid() END, 1, 'outbound', 'api', 'Sent',
           'Legacy <legacy@example.com>', 'legacy@example.com', '', 'Before the upgrade ' || g, 'legacy',
           '[{"Email": "r@example.net", "Name": "R"}]', '[]', '[]', ARRAY['r@example.net'], '{"order": "42"}', '{}', false, 'None', false,
           convert_to(E'From: legacy@example.com\\r\\nTo: r@example.net\\r\\nSubject: Before the upgrade\\r\\n\\r\\nHello ' || g, 'UTF8'),
           now() - make_interval(mins => g)
      FROM generate_series(1, :n) AS g
    """,
    """
    INSERT INTO message_recipients (message_id, email, kind, status, attempts, last_response, delivered_at)
    SELECT id, 'r@example.net', 'to', 'delivered', 1, '250 2.0.0 Ok', created_at FROM messages
    """,
    """
    INSERT INTO message_events (message_id, recipient, type, details)
    SELECT id, 'r@example.net', 'Delivered', '{"DeliveryMessage": "250 2.0.0 Ok"}' FROM messages
    """,
    """
    INSERT INTO bounces (server_id, message_id, message_stream, type, type_code, email, from_email, subject, tag, details, inactive,
                         can_activate, dump, bounced_at)
    VALUES (1, CAST(:message_id AS uuid), 'outbound', 'HardBounce', 1, 'gone@example.net', 'legacy@example.com', 'Before the upgrade 1',
            'legacy', 'smtp;550 5.1.1 no such user', true, true, convert_to('the DSN', 'UTF8'), now() - interval '1 hour')
    """,
    """
    INSERT INTO suppressions (server_id, message_stream, email, reason, origin)
    VALUES (1, 'outbound', 'gone@example.net', 'HardBounce', 'Recipient')
    """,
    """
    INSERT INTO idempotency_keys (server_id, endpoint, key, request_sha256, response_status, response_body)
    VALUES (1, 'email', 'legacy-key', repeat('a', 64), 200, '{"ErrorCode": 0}')
    """,
)

COUNTS = {
    "servers": 1,
    "server_tokens": 1,
    "message_streams": 3,
    "messages": MESSAGES,
    "message_recipients": MESSAGES,
    "message_events": MESSAGES,
    "bounces": 1,
    "suppressions": 1,
    "idempotency_keys": 1,
}


async def run_sql(url: str, statements: tuple[str, ...], **params: object) -> None:
    engine = create_async_engine(async_database_url(url))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                names = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), names)
    finally:
        await engine.dispose()


async def counts(url: str) -> dict[str, int]:
    engine = create_async_engine(async_database_url(url))
    try:
        async with engine.connect() as conn:
            return {table: int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()) for table in COUNTS}  # noqa: S608 - our table names
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str:
    engine = create_async_engine(async_database_url(url))
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_url(database_url: str) -> Iterator[str]:
    url = with_database(database_url, f"{make_url(database_url).database}_up_{secrets.token_hex(3)}")
    ensure_database(url)
    yield url
    drop_database(url)


def revisions() -> list[str]:
    """Every revision after the first, oldest first."""
    script = ScriptDirectory.from_config(config(""))
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))][1:]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_populated_database_upgrades_from_the_first_revision_to_head(fresh_url: str) -> None:
    cfg = config(fresh_url)
    command.upgrade(cfg, "0001")
    asyncio.run(
        run_sql(fresh_url, POPULATE_0001, digest=token_digest(SERVER_TOKEN), hint=SERVER_TOKEN[-4:], message_id=MESSAGE_ID, n=MESSAGES)
    )
    assert asyncio.run(counts(fresh_url)) == COUNTS

    steps = revisions()
    assert steps[-1] == ScriptDirectory.from_config(cfg).get_current_head()
    for revision in steps:
        command.upgrade(cfg, revision)
        assert asyncio.run(current_revision(fresh_url)) == revision
        assert asyncio.run(counts(fresh_url)) == COUNTS, f"rows changed at {revision}"
    command.check(cfg)

    # The newest revision goes down and up again on the populated database.
    command.downgrade(cfg, "-1")
    assert asyncio.run(current_revision(fresh_url)) == steps[-2]
    command.upgrade(cfg, "head")
    command.check(cfg)
    assert asyncio.run(counts(fresh_url)) == COUNTS

    # The API, started on the upgraded database, serves the old data with the old token.
    port = free_port()
    account = secrets.token_hex(20)
    environ = {
        **os.environ,
        "DATABASE_URL": fresh_url,
        "ACCOUNT_TOKEN": account,
        "API_PORT": str(port),
        "SENDER_AUTO_CONFIRM": "true",
        "RATE_LIMIT_ENABLED": "false",
    }
    process = subprocess.Popen([sys.executable, "-m", "api_service"], cwd=ROOT, env=environ)
    try:
        api = f"http://127.0.0.1:{port}"
        wait_healthy(api, process)
        headers = {"X-Postmark-Server-Token": SERVER_TOKEN, "Accept": "application/json"}
        server = httpx.get(f"{api}/server", headers=headers).json()
        assert server["Name"] == "Legacy"
        assert server["RetentionDays"] == 45
        listed = httpx.get(f"{api}/messages/outbound", params={"count": 10, "offset": 0}, headers=headers).json()
        assert listed["TotalCount"] == MESSAGES
        assert listed["Messages"][0]["MessageID"] == MESSAGE_ID
        assert listed["Messages"][0]["Metadata"] == {"order": "42"}
        details = httpx.get(f"{api}/messages/outbound/{MESSAGE_ID}/details", headers=headers).json()
        assert details["MessageEvents"][0]["Type"] == "Delivered"
        bounces = httpx.get(f"{api}/bounces", params={"count": 10, "offset": 0}, headers=headers).json()
        assert [b["Email"] for b in bounces["Bounces"]] == ["gone@example.net"]
        assert httpx.get(f"{api}/bounces/{bounces['Bounces'][0]['ID']}/dump", headers=headers).json()["Body"] == "the DSN"
        signature = httpx.post(
            f"{api}/senders", json={"FromEmail": "legacy@example.com", "Name": "Legacy"}, headers={"X-Postmark-Account-Token": account}
        )
        assert signature.status_code == 200, signature.text
        mail = {"From": "legacy@example.com", "Subject": "After the upgrade", "TextBody": "x"}
        refused = httpx.post(f"{api}/email", json={**mail, "To": "gone@example.net"}, headers=headers)
        assert refused.json()["ErrorCode"] == 406  # the suppression made before the upgrade holds
        sent = httpx.post(f"{api}/email", json={**mail, "To": "new@example.net"}, headers=headers)
        assert sent.status_code == 200, sent.text
        after = httpx.get(f"{api}/messages/outbound", params={"count": 1, "offset": 0}, headers=headers).json()
        assert after["TotalCount"] == MESSAGES + 1
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.timeout(300)
def test_replicas_starting_together_migrate_once(fresh_url: str) -> None:
    environ = {**os.environ, "DATABASE_URL": fresh_url}
    alembic = str(Path(sys.executable).with_name("alembic"))
    replicas = [
        subprocess.Popen([alembic, "upgrade", "head"], cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
        for _ in range(3)
    ]
    outputs = [replica.communicate(timeout=240)[0].decode(errors="replace") for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0], "\n".join(outputs)
    assert asyncio.run(current_revision(fresh_url)) == ScriptDirectory.from_config(config(fresh_url)).get_current_head()
    command.check(config(fresh_url))


@pytest.mark.timeout(120)
def test_a_migration_gives_up_on_a_held_lock_and_a_rerun_finishes(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(fresh_url)
    command.upgrade(cfg, "0011")
    holding, release = threading.Event(), threading.Event()

    async def hold_servers_lock() -> None:
        # A long transaction that read `servers`: ALTER TABLE servers must wait for it to end.
        engine = create_async_engine(async_database_url(fresh_url))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT count(*) FROM servers"))
                holding.set()
                await asyncio.to_thread(release.wait, 60)
        finally:
            await engine.dispose()

    holder = threading.Thread(target=lambda: asyncio.run(hold_servers_lock()))
    holder.start()
    try:
        assert holding.wait(timeout=30)
        monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_SECONDS", "0.5")
        from api_service.config import get_settings

        get_settings.cache_clear()
        with pytest.raises(Exception, match="lock timeout"):
            command.upgrade(cfg, "head")
        assert asyncio.run(current_revision(fresh_url)) == "0011"
    finally:
        release.set()
        holder.join(timeout=30)
    command.upgrade(cfg, "head")
    command.check(cfg)
    get_settings.cache_clear()
