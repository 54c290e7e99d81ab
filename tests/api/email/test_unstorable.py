"""Text PostgreSQL cannot hold (a lone surrogate such as JSON's "\\ud800", a NUL, bytes that are no UTF-8) is
refused at validation with a 422 naming its field, on every way in: REST sends, batches, templated sends,
bulk, and SMTP (an SMTPApiError bounce). It used to reach asyncpg's encoder inside a shared transaction."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from api_service.email.from_mime import from_mime
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.factories import INTERNAL, ServerHandle, create_sender, create_server, create_template, message, sending_server

SURROGATE = "\ud800"


async def post_raw(client: httpx.AsyncClient, path: str, body: Any, server: ServerHandle) -> httpx.Response:
    """As a client whose JSON encoder escapes everything: `"\\ud800"` on the wire (httpx's own would refuse)."""
    return await client.post(path, content=json.dumps(body).encode(), headers=server.headers | {"Content-Type": "application/json"})


async def listed(client: httpx.AsyncClient, server: ServerHandle) -> int:
    response = await client.get("/messages/outbound?count=50&offset=0", headers=server.headers)
    total: int = response.json()["TotalCount"]
    return total


@pytest.mark.asyncio
class TestRestSend:
    @pytest.mark.parametrize(
        ("override", "field"),
        [
            ({"Subject": f"Hi {SURROGATE}"}, "Subject"),
            ({"TextBody": f"x{SURROGATE}y"}, "TextBody"),
            ({"HtmlBody": f"<p>{SURROGATE}</p>"}, "HtmlBody"),
            ({"Tag": SURROGATE}, "Tag"),
            ({"Metadata": {"color": f"bl{SURROGATE}ue"}}, "Metadata.color"),
            ({"Metadata": {f"k{SURROGATE}": "v"}}, "Metadata"),
            ({"From": f'"Send{SURROGATE}er" <sender@example.com>'}, "From"),
            ({"To": f'"Ann {SURROGATE}" <ann@example.net>'}, "To"),
            ({"Attachments": [{"Name": f"a{SURROGATE}.txt", "Content": "aGk=", "ContentType": "text/plain"}]}, "Attachments.0.Name"),
            ({"Headers": [{"Name": "X-Note", "Value": SURROGATE}]}, "Headers.0.Value"),
            ({"Subject": "nul\x00"}, "Subject"),
        ],
    )
    async def test_unstorable_text_is_a_422_naming_the_field_and_nothing_is_stored(
        self, client: httpx.AsyncClient, override: dict[str, Any], field: str
    ) -> None:
        server = await sending_server(client)
        response = await post_raw(client, "/email", message(**override), server)
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == 300
        assert f"'{field}'" in response.json()["Message"]
        assert await listed(client, server) == 0

    async def test_a_surrogate_encoded_as_utf8_bytes_is_refused_too(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        # ED A0 80: U+D800 written as UTF-8, which JSON decoding lets through as a lone surrogate.
        body = json.dumps(message(Subject="@@")).encode().replace(b"@@", b"\xed\xa0\x80")
        response = await client.post("/email", content=body, headers=server.headers | {"Content-Type": "application/json"})
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)
        assert "'Subject'" in response.json()["Message"]

    async def test_bytes_that_are_no_utf8_are_invalid_json(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        body = json.dumps(message(Subject="@@")).encode().replace(b"@@", b"\xff\xfe")
        response = await client.post("/email", content=body, headers=server.headers | {"Content-Type": "application/json"})
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 402)

    async def test_the_test_token_refuses_it_the_same_way(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/email",
            content=json.dumps(message(Subject=SURROGATE)).encode(),
            headers={"X-Postmark-Server-Token": "POSTMARK_API_TEST", "Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)


@pytest.mark.asyncio
class TestBatches:
    async def test_a_bad_message_in_a_batch_gets_its_own_error_and_the_others_are_stored(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        batch = [message(Subject="one"), message(Subject=f"two {SURROGATE}"), message(Subject="three")]
        response = await post_raw(client, "/email/batch", batch, server)
        assert response.status_code == 200, response.text
        codes = [r["ErrorCode"] for r in response.json()]
        assert codes == [0, 300, 0]
        assert "'Subject'" in response.json()[1]["Message"]
        assert await listed(client, server) == 2

    async def test_a_bad_template_model_in_a_templated_batch_is_that_messages_error(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        template = await create_template(client, server)
        good = {"From": "sender@example.com", "To": "a@example.net", "TemplateId": template["TemplateId"], "TemplateModel": {"name": "Ann"}}
        bad = good | {"TemplateModel": {"name": f"B{SURROGATE}b"}}
        response = await post_raw(client, "/email/batchWithTemplates", {"Messages": [good, bad, good]}, server)
        assert response.status_code == 200, response.text
        assert [r["ErrorCode"] for r in response.json()] == [0, 300, 0]
        assert "'TemplateModel.name'" in response.json()[1]["Message"]

    async def test_a_templated_send_refuses_it(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        template = await create_template(client, server)
        body = {"From": "sender@example.com", "To": "a@example.net", "TemplateId": template["TemplateId"], "TemplateModel": {SURROGATE: 1}}
        response = await post_raw(client, "/email/withTemplate", body, server)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)

    async def test_a_template_cannot_be_saved_with_it(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await post_raw(client, "/templates", {"Name": "T", "Subject": SURROGATE, "TextBody": "x"}, server)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 403)
        assert "Subject" in response.json()["Message"]
        assert "lone surrogates" in response.json()["Message"]

    async def test_bulk_refuses_it_naming_the_field(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        body = {
            "From": "sender@example.com",
            "Subject": "News",
            "TextBody": "Hi {{ name }}",
            "MessageStream": "broadcast",
            "Messages": [{"To": "a@example.net", "TemplateModel": {"name": f"A{SURROGATE}"}}],
        }
        response = await post_raw(client, "/email/bulk", body, server)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 403)
        assert "Messages" in response.json()["Message"]


class TestSmtp:
    RAW = (
        b"From: sender@example.com\r\nTo: a@example.net\r\n"
        # An encoded word in a codec that decodes to a lone surrogate: Python's unicode_escape.
        b"Subject: =?unicode_escape?q?=5Cud800?=\r\n\r\nbody\r\n"
    )

    def test_a_header_that_decodes_to_a_surrogate_is_a_problem_and_cleaned(self) -> None:
        parsed = from_mime(self.RAW, mail_from="sender@example.com", rcpt_tos=["a@example.net"])
        assert [p.error_code for p in parsed.problems] == [300]
        assert "Subject" in parsed.problems[0].message
        assert parsed.subject == "\ufffd"

    @pytest.mark.asyncio
    async def test_it_is_bounced_as_smtpapierror_and_stored(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        await create_sender(client)
        body = {"MailFrom": "sender@example.com", "RcptTo": ["a@example.net"], "RawMessage": base64.b64encode(self.RAW).decode()}
        response = await client.post(SMTP_SUBMIT_PATH, json=body, headers=server.headers | INTERNAL)
        assert response.status_code < 500, response.text
        bounces = await client.get("/bounces?count=10&offset=0", headers=server.headers)
        [bounce] = bounces.json()["Bounces"]
        assert bounce["Type"] == "SMTPApiError"
        assert "Subject" in bounce["Details"]
