"""The worker expands a bulk request in bounded batches through the one intake, counting what was released and what
failed, resumably, and each recipient's copy is delivered like any broadcast."""

from __future__ import annotations

import asyncio
import email
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api_service.bulk.tasks import expand_due
from api_service.config import Settings
from api_service.email import service as intake
from tests.api.bulk.conftest import bulk, recipients
from tests.api.conftest import SinkHandler, Worker
from tests.factories import ServerHandle, create_sender, create_server

pytestmark = pytest.mark.asyncio


@pytest.fixture
def small_batches(settings: Settings) -> Settings:
    return settings.model_copy(update={"bulk_batch_size": 2})


async def submit(client: httpx.AsyncClient, server: ServerHandle, body: dict[str, Any]) -> str:
    response = await client.post("/email/bulk", json=body, headers=server.headers)
    assert response.status_code == 200, response.text
    bulk_id: str = response.json()["Id"]
    return bulk_id


async def status(client: httpx.AsyncClient, server: ServerHandle, bulk_id: str) -> dict[str, Any]:
    response = await client.get(f"/email/bulk/{bulk_id}", headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def outbound(client: httpx.AsyncClient, server: ServerHandle) -> list[dict[str, Any]]:
    response = await client.get("/messages/outbound?count=500&offset=0", headers=server.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["Messages"]
    return found


async def run_to_end(app: FastAPI, settings: Settings) -> int:
    batches = 0
    while await expand_due(sessionmaker=app.state.sessionmaker, settings=settings):
        batches += 1
    return batches


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class TestExpansion:
    async def test_batches_release_every_entry_and_report_progress(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, small_batches: Settings
    ) -> None:
        bulk_id = await submit(client, server, bulk(*recipients(5), Tag="news", Metadata={"campaign": "june", "n": "shared"}))

        assert await expand_due(sessionmaker=app.state.sessionmaker, settings=small_batches) == 2
        progress = await status(client, server, bulk_id)
        assert (progress["Status"], progress["ReleasedCount"], progress["FailedCount"]) == ("Processing", 2, 0)
        assert progress["PercentageCompleted"] == 40

        assert await run_to_end(app, small_batches) == 2
        done = await status(client, server, bulk_id)
        assert (done["Status"], done["ReleasedCount"], done["FailedCount"], done["PercentageCompleted"]) == ("Completed", 5, 0, 100)
        assert await expand_due(sessionmaker=app.state.sessionmaker, settings=small_batches) == 0

        sent = await outbound(client, server)
        assert sorted(m["Subject"] for m in sent) == [f"Hello User {i}" for i in range(5)]
        for item in sent:
            n = item["To"][0]["Email"].removeprefix("user").split("@")[0]
            assert item["Metadata"] == {"campaign": "june", "n": n}  # the entry's keys win
            assert (item["MessageStream"], item["Tag"], item["Status"]) == ("broadcast", "news", "Queued")

    async def test_each_copy_is_rendered_and_delivered_as_a_broadcast(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        settings: Settings,
        worker: Worker,
        sink: tuple[SinkHandler, int],
    ) -> None:
        headers = [{"Name": "X-Campaign", "Value": "june"}, {"Name": "X-Segment", "Value": "all"}]
        entries: list[dict[str, Any]] = [
            {"To": "ann@example.net", "TemplateModel": {"name": "<Ann>"}, "Headers": [{"Name": "x-segment", "Value": "vip"}]},
            {"To": "bob@example.net", "Cc": "carol@example.net", "TemplateModel": {"name": "Bob"}},
        ]
        await submit(client, server, bulk(*entries, Headers=headers))
        await run_to_end(app, settings)
        assert await worker.deliver() == 3

        copies = {r.rcpt_tos[0]: parse(r.data) for r in sink[0].received}
        assert sorted(copies) == ["ann@example.net", "bob@example.net", "carol@example.net"]
        ann = copies["ann@example.net"]
        assert ann["Subject"] == "Hello <Ann>"
        assert (ann["X-Campaign"], ann.get_all("X-Segment")) == ("june", ["vip"])
        assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = ann.get_body(("html",))
        assert html is not None
        content = html.get_content()
        assert "<p>Hi &lt;Ann&gt;</p>" in content
        assert "/t/u/" in content  # the unsubscribe placeholder became this recipient's link
        assert copies["carol@example.net"]["Subject"] == "Hello Bob"
        assert copies["bob@example.net"]["X-Segment"] == "all"

    async def test_a_stored_template_is_rendered_in_its_layout(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, settings: Settings
    ) -> None:
        body = bulk(
            {"To": "ann@example.net", "TemplateModel": {"name": "Ann", "brand": "Acme"}},
            Subject=None,
            HtmlBody=None,
            TextBody=None,
            TemplateAlias="news",
        )
        bulk_id = await submit(client, server, body)
        await run_to_end(app, settings)
        assert (await status(client, server, bulk_id))["ReleasedCount"] == 1
        [sent] = await outbound(client, server)
        details = (await client.get(f"/messages/outbound/{sent['MessageID']}/details", headers=server.headers)).json()
        assert details["Subject"] == "News for Ann"
        assert "<b>Acme</b><p>Hi Ann</p>" in details["HtmlBody"]

    async def test_suppressed_and_unrenderable_entries_count_as_failed(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, settings: Settings
    ) -> None:
        suppress = {"Suppressions": [{"EmailAddress": "gone@example.net"}]}
        assert (await client.post("/message-streams/broadcast/suppressions", json=suppress, headers=server.headers)).status_code == 200
        entries = [
            {"To": "gone@example.net", "TemplateModel": {"items": []}},  # every recipient suppressed
            {"To": "ann@example.net, gone@example.net", "TemplateModel": {"items": []}},  # some: released to the rest
            {"To": "bob@example.net", "TemplateModel": {"items": "not a list"}},  # cannot render
            {"To": "carol@example.net", "TemplateModel": {"items": ["x"]}},
        ]
        bulk_id = await submit(client, server, bulk(*entries, HtmlBody="<ul>{{#each items}}<li>{{ . }}</li>{{/each}}</ul>"))
        await run_to_end(app, settings)
        done = await status(client, server, bulk_id)
        assert (done["Status"], done["ReleasedCount"], done["FailedCount"]) == ("Completed", 2, 2)
        assert sorted(m["To"][0]["Email"] for m in await outbound(client, server)) == ["ann@example.net", "carol@example.net"]

    async def test_a_template_deleted_after_submission_fails_each_entry(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, settings: Settings
    ) -> None:
        body = bulk(*recipients(3), Subject=None, HtmlBody=None, TextBody=None, TemplateAlias="news")
        bulk_id = await submit(client, server, body)
        assert (await client.delete("/templates/news", headers=server.headers)).status_code == 200
        await run_to_end(app, settings)
        done = await status(client, server, bulk_id)
        assert (done["Status"], done["ReleasedCount"], done["FailedCount"]) == ("Completed", 0, 3)


class TestResumption:
    async def test_a_batch_that_fails_midway_is_done_again_exactly_once(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, small_batches: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bulk_id = await submit(client, server, bulk(*recipients(5)))
        assert await expand_due(sessionmaker=app.state.sessionmaker, settings=small_batches) == 2

        real_accept = intake.accept

        async def accept_then_die(**kwargs: Any) -> Any:
            await real_accept(**kwargs)  # the messages are written …
            raise ConnectionResetError("worker killed")  # … and the transaction never commits

        monkeypatch.setattr(intake, "accept", accept_then_die)
        with pytest.raises(ConnectionResetError):
            await expand_due(sessionmaker=app.state.sessionmaker, settings=small_batches)
        after_kill = await status(client, server, bulk_id)
        assert (after_kill["ReleasedCount"], len(await outbound(client, server))) == (2, 2)

        monkeypatch.setattr(intake, "accept", real_accept)
        await run_to_end(app, small_batches)
        done = await status(client, server, bulk_id)
        assert (done["Status"], done["ReleasedCount"]) == ("Completed", 5)
        sent = await outbound(client, server)
        assert sorted(m["To"][0]["Email"] for m in sent) == sorted(f"user{i}@example.net" for i in range(5))

    async def test_concurrent_workers_never_expand_an_entry_twice(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, small_batches: Settings
    ) -> None:
        ids = [await submit(client, server, bulk(*recipients(5, domain=f"d{n}.example"))) for n in range(3)]

        async def worker() -> int:
            return await run_to_end(app, small_batches)

        batches = await asyncio.gather(*(worker() for _ in range(4)))
        assert sum(batches) == 9  # 3 requests of 3 batches each, whichever worker took them
        for bulk_id in ids:
            assert (await status(client, server, bulk_id))["ReleasedCount"] == 5
        assert len(await outbound(client, server)) == 15

    async def test_a_deleted_server_takes_its_requests_with_it(
        self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle, settings: Settings
    ) -> None:
        await submit(client, server, bulk(*recipients(2)))
        deleted = await client.delete(f"/servers/{server.id}", headers={"X-Postmark-Account-Token": "test-account-token"})
        assert deleted.status_code == 200, deleted.text
        assert await expand_due(sessionmaker=app.state.sessionmaker, settings=settings) == 0


README = Path(__file__).resolve().parents[3] / "README.md"


class TestReadmeExample:
    async def test_the_readme_request_is_accepted_and_sent(self, app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> None:
        readme = README.read_text()
        section = readme[readme.index("## Bulk API") : readme.index("- **What is checked at once.**")]
        [body] = (json.loads(b) for b in re.findall(r"-d '(.*?)'\n", section, re.DOTALL))
        server = await create_server(client, "Readme")
        await create_sender(client, "news@example.com")
        bulk_id = await submit(client, server, body)
        await run_to_end(app, settings)
        done = await status(client, server, bulk_id)
        assert (done["Status"], done["ReleasedCount"], done["Subject"]) == ("Completed", 2, "What is new for {{ name }}")
        assert sorted(m["Subject"] for m in await outbound(client, server)) == ["What is new for Ann", "What is new for Bob"]
