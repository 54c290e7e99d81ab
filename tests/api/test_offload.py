"""CPU-heavy work on big messages leaves the event loop: DKIM signing, reading a message's bodies,
reading an SMTP submission."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api_service.domains import dkim
from api_service.messages import service as messages
from api_service.smtp_gateway import service as smtp_gateway
from shared.schemas.smtp import (
    SMTP_BATCH_CONTENT_TYPE,
    SMTP_BATCH_PATH,
    SMTP_SUBMIT_PATH,
    SmtpBatchEnvelope,
    SmtpBatchMessage,
    encode_smtp_batch,
)
from tests.api.conftest import Worker
from tests.factories import INTERNAL, create_domain, create_server, message

pytestmark = pytest.mark.asyncio
BIG = "Lorem ipsum dolor sit amet.\n" * 4000  # about 110 KB


def spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Record the thread each call of `owner.name` runs in."""
    threads: list[int] = []
    real: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return threads


async def test_dkim_signing_of_a_big_message_runs_in_a_thread(
    client: httpx.AsyncClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await create_server(client)
    await create_domain(client, "example.org")
    threads = spy(monkeypatch, dkim, "sign")
    await client.post("/email", json=message(From="app@example.org", TextBody=BIG, HtmlBody=None), headers=server.headers)
    assert await worker.deliver() == 1
    assert threads
    assert threading.get_ident() not in threads


async def test_details_of_a_big_message_are_parsed_in_a_thread(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await create_server(client)
    await create_domain(client, "example.org")
    sent = (await client.post("/email", json=message(From="app@example.org", TextBody=BIG), headers=server.headers)).json()
    threads = spy(monkeypatch, messages, "bodies")
    details = await client.get(f"/messages/outbound/{sent['MessageID']}/details", headers=server.headers)
    assert details.json()["TextBody"].startswith("Lorem ipsum")
    assert threads
    assert threading.get_ident() not in threads


async def test_big_smtp_submission_is_read_in_a_thread(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await create_server(client, SmtpApiActivated=True)
    await create_domain(client, "example.org")
    threads = spy(monkeypatch, smtp_gateway, "from_mime")
    raw = ("From: app@example.org\r\nTo: a@example.net\r\nSubject: big\r\n\r\n" + BIG.replace("\n", "\r\n")).encode()
    body = {"MailFrom": "app@example.org", "RcptTo": ["a@example.net"], "RawMessage": base64.b64encode(raw).decode()}
    response = await client.post(SMTP_SUBMIT_PATH, json=body, headers=server.headers | INTERNAL)
    assert response.status_code == 200, response.text
    assert threads
    assert threading.get_ident() not in threads


async def test_big_smtp_batch_is_read_in_a_thread(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await create_server(client, SmtpApiActivated=True)
    await create_domain(client, "example.org")
    threads = spy(monkeypatch, smtp_gateway, "from_mime")
    raw = ("From: app@example.org\r\nTo: a@example.net\r\nSubject: big\r\n\r\n" + BIG.replace("\n", "\r\n")).encode()
    envelope = SmtpBatchEnvelope(Token=server.token, MailFrom="app@example.org", RcptTo=["a@example.net"], Size=len(raw))
    body = encode_smtp_batch([SmtpBatchMessage(envelope=envelope, raw=raw)])
    response = await client.post(SMTP_BATCH_PATH, content=body, headers={"Content-Type": SMTP_BATCH_CONTENT_TYPE} | INTERNAL)
    assert response.status_code == 200, response.text
    assert response.json()["Outcomes"][0]["Status"] == 200
    assert threads
    assert threading.get_ident() not in threads
