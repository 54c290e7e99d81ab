"""`POST /email/bulk` checks and stores a request and answers at once; `GET /email/bulk[/{id}]` report on it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.bulk.conftest import bulk, recipients
from tests.factories import ServerHandle, create_server

pytestmark = pytest.mark.asyncio


async def submit(client: httpx.AsyncClient, server: ServerHandle, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/email/bulk", json=body, headers=server.headers | headers)


async def outbound_total(client: httpx.AsyncClient, server: ServerHandle) -> int:
    response = await client.get("/messages/outbound?count=10&offset=0", headers=server.headers)
    assert response.status_code == 200
    total: int = response.json()["TotalCount"]
    return total


class TestSubmit:
    async def test_accepted_at_once_and_nothing_is_sent_in_the_request(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(*recipients(3)))
        assert response.status_code == 200, response.text
        body = response.json()
        assert uuid.UUID(body["Id"])
        assert body["Status"] == "Accepted"
        assert (body["TotalMessages"], body["ReleasedCount"], body["FailedCount"], body["PercentageCompleted"]) == (3, 0, 0, 0)
        assert body["Subject"] == "Hello {{ name }}"
        assert body["SubmittedAt"].endswith("Z")
        assert await outbound_total(client, server) == 0  # the worker expands it, not the request

        status = await client.get(f"/email/bulk/{body['Id']}", headers=server.headers)
        assert status.status_code == 200
        assert status.json() == body

    async def test_a_template_reports_its_subject(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(Subject=None, HtmlBody=None, TextBody=None, TemplateAlias="news"))
        assert response.status_code == 200, response.text
        assert response.json()["Subject"] == "News for {{ name }}"

    async def test_no_subject_is_an_empty_one(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(Subject=None))
        assert response.status_code == 200, response.text
        assert response.json()["Subject"] == ""  # postmark.js declares Subject a required string

    async def test_a_transactional_stream_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(MessageStream="outbound"))
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 1236
        assert "Broadcasts" in response.json()["Message"]

    async def test_an_unknown_stream_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(MessageStream="nope"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1235)

    async def test_an_unknown_sender_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(From="someone@elsewhere.example"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 400)

    async def test_an_unknown_template_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(Subject=None, HtmlBody=None, TextBody=None, TemplateAlias="missing"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1101)

    async def test_a_layout_cannot_be_sent(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(Subject=None, HtmlBody=None, TextBody=None, TemplateAlias="brand"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1101)

    async def test_content_beside_a_template_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(TemplateAlias="news"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1123)

    async def test_content_that_is_no_template_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk(HtmlBody="{{#each items}}<li>{{ . }}</li>"))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 1122)

    @pytest.mark.parametrize("messages", [None, []])
    async def test_no_entries_is_refused(self, client: httpx.AsyncClient, server: ServerHandle, messages: list[Any] | None) -> None:
        body = bulk()
        body["Messages"] = messages
        response = await submit(client, server, body)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 300)

    async def test_one_bad_entry_answers_its_own_code(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await submit(client, server, bulk({"To": "ann@example.net"}, {"To": "not an address"}))
        assert response.status_code == 422
        assert response.json() == {"ErrorCode": 300, "Message": "Invalid 'To' address: 'not an address'."}

    async def test_several_bad_entries_answer_11_with_each_error(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        entries: list[dict[str, Any]] = [
            {"To": "ann@example.net"},
            {"To": "bad"},
            {"Cc": ""},
            {"To": "ok@example.net", "Metadata": {"k" * 21: "v"}},
        ]
        response = await submit(client, server, bulk(*entries))
        assert response.status_code == 422
        body = response.json()
        assert body["ErrorCode"] == 11
        assert sorted(body["Errors"]) == ["Messages[1]", "Messages[2]", "Messages[3]"]
        assert body["Errors"]["Messages[2]"] == [{"ErrorCode": 300, "Message": "Zero recipients specified."}]
        assert response.headers["X-PM-ApiErrorCode"] == "11"

    @pytest.mark.parametrize(
        "body",
        [
            bulk({"To": "ann@example.net", "TemplateModel": {"name": "A\x00"}}),
            bulk({"To": "ann@example.net", "TemplateModel": {"k\x00": 1}}),
            bulk(TemplateAlias="news\x00", Subject=None, HtmlBody=None, TextBody=None),
        ],
    )
    async def test_a_nul_anywhere_is_refused_not_stored(
        self, client: httpx.AsyncClient, server: ServerHandle, body: dict[str, Any]
    ) -> None:
        response = await submit(client, server, body)
        # Every JSON body refuses NUL the same way: 403, "Invalid request field(s)", naming the field.
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 403)
        assert "NUL" in response.json()["Message"]
        listed = await client.get("/email/bulk?count=10", headers=server.headers)
        assert listed.json().get("TotalCount", 0) == 0

    async def test_a_forbidden_attachment_is_refused(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        attachment = {"Name": "run.exe", "Content": "TVo=", "ContentType": "application/octet-stream"}
        response = await submit(client, server, bulk(Attachments=[attachment]))
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 411)

    async def test_the_test_token_checks_and_stores_nothing(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        test = ServerHandle(id=0, token="POSTMARK_API_TEST")
        response = await submit(client, test, bulk(*recipients(2)))
        assert response.status_code == 200, response.text
        assert (response.json()["Status"], response.json()["TotalMessages"]) == ("Accepted", 2)
        listed = await client.get("/email/bulk", headers=server.headers)
        assert listed.json()["Requests"] == []
        bad = await submit(client, test, bulk({"To": "bad"}))
        assert (bad.status_code, bad.json()["ErrorCode"]) == (422, 300)

    async def test_an_idempotency_key_replays_the_first_answer(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        first = await submit(client, server, bulk(), **{"Idempotency-Key": "news-42"})
        again = await submit(client, server, bulk(), **{"Idempotency-Key": "news-42"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        listed = await client.get("/email/bulk", headers=server.headers)
        assert len(listed.json()["Requests"]) == 1


class TestStatus:
    @pytest.mark.parametrize("bulk_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
    async def test_an_unknown_id_is_12(self, client: httpx.AsyncClient, server: ServerHandle, bulk_id: str) -> None:
        response = await client.get(f"/email/bulk/{bulk_id}", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 12)

    async def test_another_servers_request_is_not_found(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        other = await create_server(client, "Other")
        created = (await submit(client, server, bulk())).json()
        response = await client.get(f"/email/bulk/{created['Id']}", headers=other.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (404, 12)

    async def test_the_list_pages_newest_first(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        ids = [(await submit(client, server, bulk())).json()["Id"] for _ in range(5)]
        seen: list[str] = []
        key = None
        for _ in range(3):
            query = "count=2" + (f"&paginationKey={key}" if key else "")
            page = (await client.get(f"/email/bulk?{query}", headers=server.headers)).json()
            seen += [r["Id"] for r in page["Requests"]]
            key = page.get("PaginationKey")
            if key is None:
                break
        assert seen == ids[::-1]
        assert key is None

    async def test_a_bad_pagination_key_is_13(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/email/bulk?paginationKey=nonsense", headers=server.headers)
        assert (response.status_code, response.json()["ErrorCode"]) == (422, 13)

    async def test_the_account_token_is_not_enough(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        response = await client.get("/email/bulk", headers={"X-Postmark-Account-Token": "test-account-token"})
        assert (response.status_code, response.json()["ErrorCode"]) == (401, 10)
