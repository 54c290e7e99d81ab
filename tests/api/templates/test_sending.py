"""`POST /email/withTemplate` and `/email/batchWithTemplates`: rendered at accept time, stored and delivered rendered."""

from __future__ import annotations

import base64
import email
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import event

from tests.api.conftest import SinkHandler, Worker
from tests.factories import ServerHandle, create_layout, create_sender, create_server, create_template, sending_server

pytestmark = pytest.mark.asyncio

LAYOUT_HTML = (
    "<html><head><style>.brand { color: #e2571e; } td { padding: 4px; }</style></head>"
    '<body><p class="brand">{{ company }}</p>{{{ @content }}}<p>Bye from {{ company }}</p></body></html>'
)
LAYOUT_TEXT = "{{ company }}\n---\n{{{ @content }}}\n---"
RECEIPT_HTML = "<p>Hi {{ name }},</p><table>{{#each items}}<tr><td>{{ description }}</td><td>{{ amount }}</td></tr>{{/each}}</table>"
RECEIPT_TEXT = "Hi {{ name }},\n{{#each items}}- {{ description }}: {{ amount }}\n{{/each}}"
MODEL: dict[str, Any] = {
    "company": "Acme & Sons",
    "order": "1234",
    "name": "<Ann>",
    "items": [{"description": "Pen", "amount": "$3"}, {"description": "Ink <blue>", "amount": "$7"}],
}


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    server = await sending_server(client)
    await create_layout(client, server, alias="brand", HtmlBody=LAYOUT_HTML, TextBody=LAYOUT_TEXT)
    await create_template(
        client,
        server,
        Name="Receipt",
        Alias="receipt",
        LayoutTemplate="brand",
        Subject="Receipt {{ order }} for {{ name }}",
        HtmlBody=RECEIPT_HTML,
        TextBody=RECEIPT_TEXT,
    )
    return server


def templated(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "From": "Sender <sender@example.com>",
        "To": "ann@example.net",
        "TemplateAlias": "receipt",
        "TemplateModel": MODEL,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def details(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/messages/outbound/{message_id}/details", headers=server.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["TextBody"] = body["TextBody"].replace("\r\n", "\n")
    return body


def parts(raw: bytes | str) -> dict[str, str]:
    parsed = (
        email.message_from_bytes(raw, policy=policy.default)
        if isinstance(raw, bytes)
        else email.message_from_string(raw, policy=policy.default)
    )
    assert isinstance(parsed, EmailMessage)
    found = {"subject": str(parsed["Subject"])}
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html") and isinstance(part, EmailMessage):
            found[part.get_content_type()] = str(part.get_content())
    return found


def assert_error(response: httpx.Response, code: int) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["ErrorCode"] == code, body
    return body


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


class TestSendWithTemplate:
    async def test_the_stored_message_is_rendered_in_its_layout_escaped_looped_and_inlined(
        self, client: httpx.AsyncClient, server: ServerHandle
    ) -> None:
        sent = await client.post("/email/withTemplate", json=templated(), headers=server.headers)
        assert sent.status_code == 200, sent.text
        assert sent.json()["ErrorCode"] == 0
        assert sent.json()["To"] == "ann@example.net"
        got = await details(client, server, sent.json()["MessageID"])
        assert got["Subject"] == "Receipt 1234 for <Ann>"
        html = got["HtmlBody"]
        assert '<p class="brand" style="color: #e2571e;">Acme &amp; Sons</p>' in html
        assert "<p>Hi &lt;Ann&gt;,</p>" in html
        assert '<td style="padding: 4px;">Pen</td>' in html
        assert '<td style="padding: 4px;">Ink &lt;blue&gt;</td>' in html
        assert "<style>" in html  # kept for the rules that cannot be inlined
        assert got["TextBody"].strip() == "Acme & Sons\n---\nHi <Ann>,\n- Pen: $3\n- Ink <blue>: $7\n\n---"

    async def test_by_id_and_id_wins_over_alias(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_template(client, server, Alias="other", Subject="Other {{ name }}", HtmlBody=None, TextBody="other")
        sent = await client.post(
            "/email/withTemplate", json=templated(TemplateId=other["TemplateId"], TemplateAlias="receipt"), headers=server.headers
        )
        got = await details(client, server, sent.json()["MessageID"])
        assert got["Subject"] == "Other <Ann>"
        assert got["HtmlBody"] == ""
        assert got["TextBody"].strip() == "other"

    async def test_inline_css_false_keeps_the_style_block_only(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post("/email/withTemplate", json=templated(InlineCss=False), headers=server.headers)
        html = (await details(client, server, sent.json()["MessageID"]))["HtmlBody"]
        assert '<p class="brand">Acme &amp; Sons</p>' in html
        assert "style=" not in html

    async def test_editing_the_layout_changes_the_next_message(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await client.put("/templates/brand", json={"TextBody": "NEW {{ company }}: {{{ @content }}}"}, headers=server.headers)
        sent = await client.post("/email/withTemplate", json=templated(), headers=server.headers)
        assert (await details(client, server, sent.json()["MessageID"]))["TextBody"].startswith("NEW Acme & Sons: Hi <Ann>,")

    async def test_missing_values_render_empty(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post("/email/withTemplate", json=templated(TemplateModel={}), headers=server.headers)
        got = await details(client, server, sent.json()["MessageID"])
        assert got["Subject"] == "Receipt  for "
        assert got["TextBody"].strip() == "---\nHi ,\n\n---"

    async def test_every_other_field_works_as_on_email(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post(
            "/email/withTemplate",
            json=templated(
                Cc="Copy <cc@example.net>",
                Bcc="hidden@example.net",
                ReplyTo="reply@example.com",
                Tag="receipt",
                Metadata={"order": "1234"},
                Headers=[{"Name": "X-Order", "Value": "1234"}],
                Attachments=[{"Name": "r.txt", "Content": base64.b64encode(b"total").decode(), "ContentType": "text/plain"}],
                TrackOpens=True,
                TrackLinks="HtmlOnly",
                MessageStream="outbound",
            ),
            headers=server.headers,
        )
        assert sent.status_code == 200, sent.text
        got = await details(client, server, sent.json()["MessageID"])
        assert (got["Tag"], got["Metadata"], got["Attachments"]) == ("receipt", {"order": "1234"}, ["r.txt"])
        assert (got["TrackOpens"], got["TrackLinks"], got["MessageStream"]) == (True, "HtmlOnly", "outbound")
        assert sorted(got["Recipients"]) == ["ann@example.net", "cc@example.net", "hidden@example.net"]
        dump = (await client.get(f"/messages/outbound/{sent.json()['MessageID']}/dump", headers=server.headers)).json()["Body"]
        assert "X-Order: 1234" in dump
        assert "Reply-To: reply@example.com" in dump
        assert parts(dump)["subject"] == "Receipt 1234 for <Ann>"

    async def test_idempotency_key_replays_the_first_answer(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        headers = {**server.headers, "Idempotency-Key": "order-1234"}
        first = await client.post("/email/withTemplate", json=templated(), headers=headers)
        second = await client.post("/email/withTemplate", json=templated(), headers=headers)
        assert first.json()["MessageID"] == second.json()["MessageID"]
        assert (await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 1

    async def test_the_sender_and_recipient_rules_still_apply(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert_error(await client.post("/email/withTemplate", json=templated(From="nobody@elsewhere.example"), headers=server.headers), 400)
        assert_error(await client.post("/email/withTemplate", json=templated(To=""), headers=server.headers), 300)

    async def test_the_test_token_checks_and_sends_nothing(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        test = {"X-Postmark-Server-Token": "POSTMARK_API_TEST"}
        accepted = await client.post("/email/withTemplate", json=templated(), headers=test)
        assert accepted.json()["Message"] == "Test job accepted"
        assert_error(await client.post("/email/withTemplate", json=templated(Subject="x"), headers=test), 1123)


class TestSendWithTemplateErrors:
    @pytest.mark.parametrize(
        ("overrides", "code"),
        [
            ({"TemplateAlias": "nothing"}, 1101),
            ({"TemplateAlias": None}, 1101),
            ({"TemplateAlias": "", "TemplateId": 0}, 1101),
            ({"TemplateAlias": None, "TemplateId": 987654}, 1101),
            ({"TemplateAlias": "brand"}, 1101),
            ({"TemplateModel": None}, 1120),
            ({"Subject": "Hello"}, 1123),
            ({"HtmlBody": ""}, 1123),
            ({"TextBody": "text"}, 1123),
            ({"TemplateModel": {"items": "not a list"}}, 1122),
            ({"TemplateModel": {"order": "x" * 2000}}, 1121),
            ({"TemplateModel": ["a"]}, 403),
            ({"TemplateId": "receipt"}, 403),
            ({"TemplateModel": {"name": "nul\x00"}}, 300),
        ],
    )
    async def test_refused_with_postmark_error_code(
        self, client: httpx.AsyncClient, server: ServerHandle, overrides: dict[str, Any], code: int
    ) -> None:
        body = templated() | overrides
        assert_error(
            await client.post(
                "/email/withTemplate", json={k: v for k, v in body.items() if v is not None or k == "TemplateModel"}, headers=server.headers
            ),
            code,
        )
        assert (await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0

    async def test_postmark_sentences(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        alias = assert_error(
            await client.post("/email/withTemplate", json=templated(TemplateAlias="nothing"), headers=server.headers), 1101
        )
        assert alias["Message"] == "The Template's 'Alias' associated with this request is not valid or was not found."
        model = assert_error(
            await client.post("/email/withTemplate", json=templated() | {"TemplateModel": None}, headers=server.headers), 1120
        )
        assert model["Message"] == "A 'TemplateModel' is required when using a template to send an email."
        mixed = assert_error(await client.post("/email/withTemplate", json=templated(Subject="x"), headers=server.headers), 1123)
        assert mixed["Message"] == "Neither 'TextBody', 'HtmlBody', or 'Subject' may be specified when using a template for the email."

    async def test_a_deleted_template_cannot_be_sent(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        created = await create_template(client, server, Alias="gone")
        await client.delete("/templates/gone", headers=server.headers)
        assert_error(await client.post("/email/withTemplate", json=templated(TemplateAlias="gone"), headers=server.headers), 1101)
        assert_error(
            await client.post("/email/withTemplate", json=templated(TemplateId=created["TemplateId"]), headers=server.headers), 1101
        )


class TestBatchWithTemplates:
    async def test_each_message_gets_its_result_in_order(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_template(client, server, Alias="welcome")
        messages = [
            templated(To="a@example.net"),
            templated(To="b@example.net", TemplateAlias="nothing"),
            templated(To="c@example.net", TemplateAlias=None, TemplateId=other["TemplateId"], TemplateModel={"name": "Cy"}),
            templated(To="d@example.net", Subject="x"),
            templated(To="e@example.net", From="nobody@elsewhere.example"),
        ]
        response = await client.post("/email/batchWithTemplates", json={"Messages": messages}, headers=server.headers)
        assert response.status_code == 200, response.text
        results = response.json()
        assert [r["ErrorCode"] for r in results] == [0, 1101, 0, 1123, 400]
        assert results[0]["To"] == "a@example.net"
        assert "MessageID" not in results[1]
        welcome = await details(client, server, results[2]["MessageID"])
        assert welcome["Subject"] == "Hi Cy"

    async def test_one_template_lookup_for_the_whole_batch(self, client: httpx.AsyncClient, server: ServerHandle, app: FastAPI) -> None:
        other = await create_template(client, server, Alias="welcome")
        messages = [templated(To=f"r{i}@example.net") for i in range(20)]
        messages += [templated(To=f"w{i}@example.net", TemplateAlias=None, TemplateId=other["TemplateId"]) for i in range(20)]
        with statements(app) as seen:
            results = (await client.post("/email/batchWithTemplates", json={"Messages": messages}, headers=server.headers)).json()
        assert [r["ErrorCode"] for r in results] == [0] * 40
        assert len([s for s in seen if "FROM templates" in s]) == 1

    async def test_plain_sends_read_no_template(self, client: httpx.AsyncClient, server: ServerHandle, app: FastAPI) -> None:
        body = {"From": "sender@example.com", "To": "x@example.net", "Subject": "s", "TextBody": "t"}
        with statements(app) as seen:
            assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert not [s for s in seen if "templates" in s]

    async def test_more_than_500_is_410(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email/batchWithTemplates", json={"Messages": [templated()] * 501}, headers=server.headers)
        assert_error(response, 410)

    @pytest.mark.parametrize("body", [{}, [templated()], {"Messages": "x"}])
    async def test_the_body_is_an_object_with_messages(self, client: httpx.AsyncClient, server: ServerHandle, body: Any) -> None:
        response = await client.post("/email/batchWithTemplates", json=body, headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] in (402, 403)


class TestDelivery:
    async def test_the_sink_receives_the_rendered_message(
        self, client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        sent = await client.post("/email/withTemplate", json=templated(), headers=server.headers)
        assert sent.status_code == 200, sent.text
        assert await worker.deliver() == 1
        [received] = sink[0].received
        got = parts(received.data)
        assert got["subject"] == "Receipt 1234 for <Ann>"
        assert '<td style="padding: 4px;">Ink &lt;blue&gt;</td>' in got["text/html"]
        assert "- Ink <blue>: $7" in got["text/plain"]


README = Path(__file__).resolve().parents[3] / "README.md"


class TestReadmeExample:
    async def test_the_readme_commands_send_the_receipt(self, client: httpx.AsyncClient) -> None:
        readme = README.read_text()
        section = readme[readme.index("## Templates") : readme.index("- **Endpoints.**")]
        layout, template, send = (json.loads(b) for b in re.findall(r"-d '(.*?)'\n", section, re.DOTALL))
        server = await create_server(client, "Readme")
        await create_sender(client, "you@example.com")
        for body in (layout, template):
            assert (await client.post("/templates", json=body, headers=server.headers)).status_code == 200
        sent = await client.post("/email/withTemplate", json=send, headers=server.headers)
        assert sent.status_code == 200, sent.text
        got = await details(client, server, sent.json()["MessageID"])
        assert got["Subject"] == "Your receipt for order 1234"
        assert '<p class="brand" style="color: #e2571e;">Acme</p>' in got["HtmlBody"]
        assert "<li>Ink: $7</li>" in got["HtmlBody"]
