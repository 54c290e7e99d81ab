"""The audit log: what the API and console record, redaction, append-only, retention and export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from api_service.audit import service as audit
from api_service.config import Settings
from api_service.models import AuditEvent
from api_service.retention.tasks import purge_due
from tests.factories import ACCOUNT, message, sending_server

pytestmark = pytest.mark.asyncio


async def events(app: FastAPI) -> list[AuditEvent]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())


class TestRecorded:
    async def test_settings_change_keeps_before_and_after_and_who(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        await client.put("/server", json={"Color": "red", "TrackOpens": True}, headers=server.headers)
        await client.post("/email", json=message(), headers=server.headers)
        await client.put("/server", json={"Color": "nope"}, headers=server.headers)  # refused: not recorded
        recorded = await events(app)
        assert [e.action for e in recorded] == ["POST /servers", "POST /senders", "PUT /server"]
        edit = recorded[-1]
        assert edit.actor == "token:default#1"
        assert (edit.before, edit.after) == ({"Color": "purple", "TrackOpens": False}, {"Color": "red", "TrackOpens": True})
        assert (edit.target_type, edit.target_id, edit.server_id, edit.ip) == ("server", str(server.id), server.id, "127.0.0.1")
        assert recorded[0].actor == "account-token:ACCOUNT_TOKEN"

    async def test_secrets_are_redacted(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        hook = {
            "Url": "https://hooks.example.com/x",
            "HttpAuth": {"Username": "u", "Password": "p4ss"},
            "HttpHeaders": [{"Name": "X", "Value": "s"}],
        }
        assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
        webhook = (await events(app))[-1]
        assert webhook.after is not None
        assert webhook.after["Url"] == "https://hooks.example.com/x"
        assert webhook.after["HttpAuth"] == audit.REDACTED
        assert "p4ss" not in str(webhook.after)

    async def test_record_is_the_function_other_packages_call(self, app: FastAPI) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await audit.record(
                session=session,
                actor="user:alice",
                action="user.set-role",
                target_type="console-user",
                target_id="bob",
                after={"Role": "Viewer", "Password": "x"},
            )
        [event] = await events(app)
        assert event.after == {"Role": "Viewer", "Password": audit.REDACTED}


class TestAppendOnly:
    async def test_update_and_delete_are_refused_except_by_the_purge(self, app: FastAPI) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await audit.record(session=session, actor="shell:root", action="x")
        for statement in (update(AuditEvent).values(actor="someone else"), delete(AuditEvent)):
            async with app.state.sessionmaker() as session:
                with pytest.raises(DBAPIError, match="append-only"):
                    async with session.begin():
                        await session.execute(statement)
        async with app.state.sessionmaker() as session, session.begin():
            assert await audit.purge(session=session, days=1, limit=10, now=datetime.now(UTC) + timedelta(days=2)) == 1
            assert (await session.execute(text("SELECT current_setting('postgate.audit_purge', true)"))).scalar() == "on"
        assert await events(app) == []


class TestRetention:
    async def test_the_retention_job_keeps_audit_retention_days(self, app: FastAPI, settings: Settings) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            session.add(AuditEvent(actor="shell:root", action="old", occurred_at=datetime.now(UTC) - timedelta(days=400)))
            session.add(AuditEvent(actor="shell:root", action="recent", occurred_at=datetime.now(UTC) - timedelta(days=300)))
        assert settings.audit_retention_days == 365
        await purge_due(sessionmaker=app.state.sessionmaker, settings=settings)
        assert [e.action for e in await events(app)] == ["recent"]


class TestExport:
    async def test_csv_and_jsonl(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await client.post("/servers", json={"Name": "Shop"}, headers=ACCOUNT)
        async with app.state.sessionmaker() as session, session.begin():
            await audit.record(session=session, actor="=HYPERLINK(1)", action="x")
        async with app.state.sessionmaker() as session:
            jsonl = [line async for line in audit.export(session=session, fmt="jsonl")]
            rows = [line async for line in audit.export(session=session, fmt="csv")]
        assert len(jsonl) == 2
        assert '"actor": "account-token:ACCOUNT_TOKEN"' in jsonl[0]
        assert rows[0].startswith("id,occurred_at,actor,action,target_type")
        assert '"{""Name"": ""Shop""}"' in rows[1]
        assert ",'=HYPERLINK(1),x," in rows[2]  # a spreadsheet would run it
