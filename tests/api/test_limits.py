"""Unbounded inputs get Postmark's limits where it has them, sane ones where it does not, and a
clear 4xx instead of a 500 or a quiet success."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from api_service.email.from_mime import from_mime
from shared.constants import MAX_CUSTOM_HEADERS, MAX_ENVELOPE_RECIPIENTS, MAX_HEADER_VALUE_CHARS
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.factories import ACCOUNT, INTERNAL, ServerHandle, create_server, message, sending_server

TEST_TOKEN = {"X-Postmark-Server-Token": "POSTMARK_API_TEST"}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.asyncio
class TestSendLimits:
    async def test_a_one_megabyte_header_value_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email", json=message(Headers=[{"Name": "X-Big", "Value": "x" * 1_000_000}]), headers=TEST_TOKEN)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert f"at most {MAX_HEADER_VALUE_CHARS} characters" in response.json()["Message"]

    async def test_two_thousand_custom_headers_are_refused(self, client: httpx.AsyncClient) -> None:
        headers = [{"Name": f"X-H{i}", "Value": "v"} for i in range(2000)]
        response = await client.post("/email", json=message(Headers=headers), headers=TEST_TOKEN)
        assert response.status_code == 422
        assert f"At most {MAX_CUSTOM_HEADERS} custom Headers" in response.json()["Message"]

    async def test_deeply_nested_metadata_is_a_422_not_a_500(self, client: httpx.AsyncClient) -> None:
        body = json.dumps(message(Metadata=nested(400)))
        response = await client.post("/email", content=body, headers={**TEST_TOKEN, "Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert "must be a string" in response.json()["Message"]

    async def test_deeply_nested_metadata_in_a_batch_is_that_message_s_error(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        body = json.dumps([message(Metadata=nested(400)), message()])
        response = await client.post("/email/batch", content=body, headers={**server.headers, "Content-Type": "application/json"})
        assert response.status_code == 200
        assert [r["ErrorCode"] for r in response.json()] == [300, 0]


@pytest.mark.asyncio
class TestNul:
    @pytest.mark.parametrize(
        ("path", "code", "account"),
        [
            ("/messages/outbound?count=10&offset=0&subject=%00", 700, False),
            ("/messages/outbound?count=10&offset=0&metadata_a%00=b", 700, False),
            ("/bounces?count=10&offset=0&emailFilter=%00", 1000, False),
            ("/servers?count=10&offset=0&name=a%00b", 600, True),
            ("/webhooks?MessageStream=%00", 403, False),
        ],
    )
    async def test_nul_in_a_query_is_a_422(self, client: httpx.AsyncClient, path: str, code: int, account: bool) -> None:
        server = await create_server(client)
        response = await client.get(path, headers=ACCOUNT if account else server.headers)
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == code
        assert "NUL" in response.json()["Message"]

    async def test_nul_in_a_path_is_a_404(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.get("/message-streams/out%00bound/suppressions/dump", headers=server.headers)
        assert response.status_code == 404

    @pytest.mark.parametrize(
        "body",
        [
            {"Url": "https://hooks.example/a\x00b"},
            {"Url": "https://hooks.example/", "MessageStream": "out\x00bound"},
            {"Url": "https://hooks.example/", "HttpAuth": {"Username": "u\x00", "Password": "p"}},
        ],
    )
    async def test_nul_in_a_json_body_is_a_422(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        server = await create_server(client)
        response = await client.post("/webhooks", json=body, headers=server.headers)
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == 403
        assert "NUL characters are not allowed" in response.json()["Message"]


@pytest.mark.asyncio
class TestSmtpSubmission:
    async def submit(self, client: httpx.AsyncClient, server: ServerHandle, rcpt_tos: list[str]) -> httpx.Response:
        raw = b"From: sender@example.com\r\nTo: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
        body = {"MailFrom": "sender@example.com", "RcptTo": rcpt_tos, "RawMessage": base64.b64encode(raw).decode()}
        return await client.post(SMTP_SUBMIT_PATH, json=body, headers=server.headers | INTERNAL)

    async def test_rcpt_to_list_is_capped(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        response = await self.submit(client, server, [f"r{i}@example.net" for i in range(MAX_ENVELOPE_RECIPIENTS + 1)])
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 403

    async def test_rcpt_to_address_length_is_capped(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client, SmtpApiActivated=True)
        response = await self.submit(client, server, ["a" * 100_000 + "@example.net"])
        assert response.status_code == 422


class TestSmtpMetadata:
    def test_oversized_metadata_is_a_problem_and_not_kept(self) -> None:
        raw = (
            b"From: sender@example.com\r\nTo: a@example.net\r\n"
            b"X-PM-Metadata-ok: fine\r\n"
            b"X-PM-Metadata-big: " + b"v" * 100_000 + b"\r\n"
            b"X-PM-Metadata-" + b"k" * 500 + b": v\r\n"
            b"\r\nbody\r\n"
        )
        parsed = from_mime(raw, mail_from="sender@example.com", rcpt_tos=["a@example.net"])
        assert parsed.metadata == {"ok": "fine"}
        assert len(parsed.problems) == 2
        assert all("X-PM-Metadata" in p.message for p in parsed.problems)

    def test_thousands_of_metadata_headers_are_not_all_read(self) -> None:
        raw = b"From: sender@example.com\r\nTo: a@example.net\r\n" + b"X-PM-Metadata-a: v\r\n" * 50_000 + b"\r\nbody\r\n"
        parsed = from_mime(raw, mail_from="sender@example.com", rcpt_tos=["a@example.net"])
        assert len(parsed.metadata) <= 11
        assert any("at most 10 keys" in p.message for p in parsed.problems)


@pytest.mark.asyncio
class TestAttachments:
    @pytest.mark.parametrize("name", ["invoice.exe.", "invoice.exe. . ", "invoice.EXE", "setup.msi..", "a.b.scr"])
    async def test_forbidden_extension_with_trailing_dots_is_refused(self, client: httpx.AsyncClient, name: str) -> None:
        attachment = {"Name": name, "Content": base64.b64encode(b"MZ").decode(), "ContentType": "application/octet-stream"}
        response = await client.post("/email", json=message(Attachments=[attachment]), headers=TEST_TOKEN)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 411

    @pytest.mark.parametrize("name", ["invoice.exe.txt", "report.pdf", "no-extension", "dots...pdf"])
    async def test_other_names_pass(self, client: httpx.AsyncClient, name: str) -> None:
        attachment = {"Name": name, "Content": base64.b64encode(b"%PDF").decode(), "ContentType": "application/pdf"}
        response = await client.post("/email", json=message(Attachments=[attachment]), headers=TEST_TOKEN)
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "content_type", ["pdf/", "/pdf", "application/pdf/x", "multipart/mixed", "bogus/thing", "text/pl ain", "application/(x)", "x" * 300]
    )
    async def test_content_type_must_be_a_mime_type(self, client: httpx.AsyncClient, content_type: str) -> None:
        attachment = {"Name": "a.dat", "Content": base64.b64encode(b"x").decode(), "ContentType": content_type}
        response = await client.post("/email", json=message(Attachments=[attachment]), headers=TEST_TOKEN)
        assert response.status_code == 422
        assert "ContentType" in response.json()["Message"]

    @pytest.mark.parametrize("content_type", ["application/pdf", "image/svg+xml", "text/plain; charset=utf-8", "Application/Vnd.MS-Excel"])
    async def test_real_mime_types_pass(self, client: httpx.AsyncClient, content_type: str) -> None:
        attachment = {"Name": "a.dat", "Content": base64.b64encode(b"x").decode(), "ContentType": content_type}
        response = await client.post("/email", json=message(Attachments=[attachment]), headers=TEST_TOKEN)
        assert response.status_code == 200, response.text
