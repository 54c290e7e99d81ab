"""A refused message (or a report) is stored once, however many bounces it explains."""

from __future__ import annotations

import base64

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api_service.models import Bounce, BounceDump
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.factories import INTERNAL, create_server

pytestmark = pytest.mark.asyncio


async def stored_bytes(app: FastAPI) -> tuple[int, int]:
    async with app.state.sessionmaker() as session:
        dumps = (await session.execute(select(func.count(), func.coalesce(func.sum(func.length(BounceDump.body)), 0)))).one()
        legacy = (await session.execute(select(func.coalesce(func.sum(func.length(Bounce.dump)), 0)))).scalar_one()
        return int(dumps[0]), int(dumps[1]) + int(legacy)


class TestDumpsAreStoredOnce:
    async def test_message_refused_for_every_recipient_is_kept_once(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        body = ("x" * 76 + "\r\n") * 1300  # about 100 KB
        raw = f"From: nobody@unsigned.example\r\nTo: a@example.net\r\nSubject: big\r\n\r\n{body}".encode()
        recipients = [f"r{i}@example.net" for i in range(50)]
        submission = {"MailFrom": "nobody@unsigned.example", "RcptTo": recipients, "RawMessage": base64.b64encode(raw).decode()}
        response = await client.post(SMTP_SUBMIT_PATH, json=submission, headers=server.headers | INTERNAL)
        assert response.status_code == 200, response.text
        assert response.json()["Refused"] == 50
        listed = (await client.get("/bounces?count=100&offset=0&type=SMTPApiError", headers=server.headers | INTERNAL)).json()
        assert listed["TotalCount"] == 50
        assert all(b["DumpAvailable"] for b in listed["Bounces"])
        count, size = await stored_bytes(app)
        assert count == 1
        assert size < 2 * len(raw)
        first, last = listed["Bounces"][0]["ID"], listed["Bounces"][-1]["ID"]
        for bounce_id in (first, last):
            dump = (await client.get(f"/bounces/{bounce_id}/dump", headers=server.headers | INTERNAL)).json()["Body"]
            assert dump.startswith("Message-ID: ")
            assert "Subject: big" in dump
