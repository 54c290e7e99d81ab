from __future__ import annotations

import base64
import email
from email import policy

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from tests.factories import ServerHandle, create_domain, message, sending_server

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await sending_server(client)


class TestSendEmail:
    async def test_send_returns_postmark_result_and_queues_message(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(Tag="welcome", Metadata={"a": "b"}), headers=server.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ErrorCode"] == 0
        assert body["Message"] == "OK"
        assert body["To"] == "receiver@example.net"
        assert body["SubmittedAt"].endswith("Z")
        listed = await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)
        assert listed.json()["TotalCount"] == 1
        item = listed.json()["Messages"][0]
        assert item["MessageID"] == body["MessageID"]
        assert item["Status"] == "Queued"
        assert item["Tag"] == "welcome"
        assert item["Metadata"] == {"a": "b"}

    async def test_stored_message_is_rfc5322_multipart_alternative(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        logo = base64.b64encode(b"\x89PNG fake").decode()
        sent = await client.post(
            "/email",
            json=message(
                Cc="Copy <cc@example.net>",
                Bcc="hidden@example.net",
                ReplyTo="reply@example.com",
                Headers=[{"Name": "X-Custom", "Value": "yes"}],
                Attachments=[
                    {"Name": "report.txt", "Content": base64.b64encode(b"numbers").decode(), "ContentType": "text/plain"},
                    {"Name": "logo.png", "Content": logo, "ContentType": "image/png", "ContentID": "cid:logo"},
                ],
            ),
            headers=server.headers,
        )
        assert sent.status_code == 200, sent.text
        dump = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/dump", headers=server.headers)
        parsed = email.message_from_string(dump.json()["Body"], policy=policy.default)
        assert parsed["Message-ID"].startswith(f"<{sent.json()['MessageID']}@")
        assert parsed["Date"]
        assert parsed["Bcc"] is None
        assert parsed["X-Custom"] == "yes"
        assert parsed["Reply-To"] == "reply@example.com"
        assert parsed.get_content_type() == "multipart/mixed"
        types = [part.get_content_type() for part in parsed.walk()]
        assert "multipart/alternative" in types
        assert "multipart/related" in types
        assert "image/png" in types
        details = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)
        assert details.json()["TextBody"].strip() == "Hello there"
        assert details.json()["HtmlBody"].strip() == "<p>Hello there</p>"
        assert sorted(details.json()["Recipients"]) == ["cc@example.net", "hidden@example.net", "receiver@example.net"]

    async def test_group_syntax_names_nobody_and_bcc_carries_the_message(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post("/email", json=message(To="undisclosed-recipients:;", Bcc="hidden@example.net"), headers=server.headers)
        assert sent.status_code == 200, sent.text
        dump = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/dump", headers=server.headers)
        parsed = email.message_from_string(dump.json()["Body"], policy=policy.default)
        assert parsed["To"] == "undisclosed-recipients:;"
        details = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)
        assert details.json()["Recipients"] == ["hidden@example.net"]

    async def test_group_syntax_alone_is_zero_recipients(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post("/email", json=message(To="undisclosed-recipients:;"), headers=server.headers)
        assert sent.status_code == 422
        assert sent.json() == {"ErrorCode": 300, "Message": "Zero recipients specified."}

    async def test_custom_message_id_header_is_kept(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        sent = await client.post(
            "/email", json=message(Headers=[{"Name": "Message-ID", "Value": "<mine@example.com>"}]), headers=server.headers
        )
        dump = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/dump", headers=server.headers)
        assert "Message-ID: <mine@example.com>" in dump.json()["Body"]

    async def test_missing_token_returns_401_code_10(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email", json=message())
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == 10

    async def test_wrong_token_returns_401_code_10(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email", json=message(), headers={"X-Postmark-Server-Token": "nope"})
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == 10

    @pytest.mark.parametrize(
        ("override", "text"),
        [
            ({"To": ""}, "Zero recipients specified."),
            ({"From": ""}, "'From'"),
            ({"From": "not an address"}, "Invalid 'From'"),
            ({"TextBody": None, "HtmlBody": None}, "TextBody or HtmlBody"),
            ({"To": ", ".join(f"r{i}@example.net" for i in range(51))}, "Too many 'To'"),
            ({"Metadata": {f"k{i}": "v" for i in range(11)}}, "Metadata"),
            ({"Subject": "x" * 2001}, "Subject"),
            ({"Headers": [{"Name": "X-Bad", "Value": "a\r\nBcc: evil@example.net"}]}, "line breaks"),
            ({"TextBody": "nul\x00byte"}, "NUL"),
            ({"Attachments": [{"Name": "a.txt", "Content": "***", "ContentType": "text/plain"}]}, "Base64"),
        ],
    )
    async def test_invalid_message_returns_300(
        self, client: httpx.AsyncClient, server: ServerHandle, override: dict[str, object], text: str
    ) -> None:
        response = await client.post("/email", json=message(**override), headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert text in response.json()["Message"]

    async def test_from_without_signature_returns_400(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(From="stranger@elsewhere.com"), headers=server.headers)
        assert response.status_code == 422
        assert response.json() == {
            "ErrorCode": 400,
            "Message": "The 'From' address you supplied (stranger@elsewhere.com) is not a Sender Signature on your account. "
            "Please add and confirm this address in order to be able to use it in the 'From' field of your messages.",
        }

    async def test_from_on_a_domain_is_accepted(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        await create_domain(client, "example.org")
        response = await client.post("/email", json=message(From='"Joe, Jr." <anyone@example.org>'), headers=server.headers)
        assert response.status_code == 200, response.text

    async def test_invalid_json_returns_402(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", content=b"{not json", headers={**server.headers, "Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 402

    async def test_non_json_body_returns_415_code_409(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post(
            "/email", content=b"From=x", headers={**server.headers, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 415
        assert response.json()["ErrorCode"] == 409

    async def test_wrong_field_type_returns_403(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(Headers="nope"), headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 403
        assert "Headers" in response.json()["Message"]

    async def test_forbidden_attachment_returns_411(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        attachment = {"Name": "setup.EXE", "Content": base64.b64encode(b"MZ").decode(), "ContentType": "application/octet-stream"}
        response = await client.post("/email", json=message(Attachments=[attachment]), headers=server.headers)
        assert response.status_code == 422
        assert response.json() == {"ErrorCode": 411, "Message": "Attachment file type not allowed."}

    async def test_too_large_body_returns_413(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(TextBody="x" * (11 * 1024 * 1024)), headers=server.headers)
        assert response.status_code == 413
        assert response.json()["ErrorCode"] == 300

    async def test_unknown_stream_returns_1235(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(MessageStream="nope"), headers=server.headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 1235

    async def test_test_token_validates_and_stores_nothing(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email", json=message(), headers={"X-Postmark-Server-Token": "POSTMARK_API_TEST"})
        assert response.status_code == 200
        assert response.json()["Message"] == "Test job accepted"
        listed = await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)
        assert listed.json()["TotalCount"] == 0


class TestBatch:
    async def test_items_succeed_and_fail_independently(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post(
            "/email/batch", json=[message(), message(From="x@nowhere.com"), message(To="")], headers=server.headers
        )
        assert response.status_code == 200
        results = response.json()
        assert [r["ErrorCode"] for r in results] == [0, 400, 300]
        assert "MessageID" not in results[1]
        listed = await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)
        assert listed.json()["TotalCount"] == 1

    async def test_more_than_500_returns_410(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.post("/email/batch", json=[message()] * 501, headers=server.headers)
        assert response.status_code == 422
        assert response.json() == {"ErrorCode": 410, "Message": "You may only send up to 500 messages in a single batched request."}


class TestIdempotencyKey:
    async def test_retry_returns_first_response_and_sends_once(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        headers = {**server.headers, "Idempotency-Key": "k-1"}
        first = await client.post("/email", json=message(), headers=headers)
        second = await client.post("/email", json=message(), headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        listed = await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)
        assert listed.json()["TotalCount"] == 1

    async def test_same_key_other_body_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        headers = {**server.headers, "Idempotency-Key": "k-2"}
        assert (await client.post("/email", json=message(), headers=headers)).status_code == 200
        response = await client.post("/email", json=message(Subject="Other"), headers=headers)
        assert response.status_code == 422
        assert "different request body" in response.json()["Message"]

    async def test_failed_request_does_not_burn_the_key(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        headers = {**server.headers, "Idempotency-Key": "k-3"}
        assert (await client.post("/email", json=message(To=""), headers=headers)).status_code == 422
        assert (await client.post("/email", json=message(To=""), headers=headers)).json()["ErrorCode"] == 300


class TestServerSettingsCache:
    async def test_edit_applies_to_the_next_send_at_once(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert (await client.post("/email", json=message(), headers=server.headers)).status_code == 200
        await client.put("/server", json={"TrackOpens": True}, headers=server.headers)
        sent = await client.post("/email", json=message(), headers=server.headers)
        details = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)
        assert details.json()["TrackOpens"] is True

    async def test_server_deleted_behind_the_cache_gives_401(self, app: FastAPI, client: httpx.AsyncClient, server: ServerHandle) -> None:
        assert (await client.post("/email", json=message(), headers=server.headers)).status_code == 200
        # As another worker process would: delete without clearing this process' cache.
        async with app.state.engine.begin() as conn:
            await conn.execute(text("DELETE FROM servers WHERE id = :id"), {"id": server.id})
        response = await client.post("/email", json=message(), headers=server.headers)
        assert response.status_code == 401
        assert response.json()["ErrorCode"] == 10
