"""Complaints (ARF) count only for the recipient they are about, from that recipient's domain or a
configured feedback loop; a complaint suppression can be lifted by the customer, on purpose."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
import pytest_asyncio

from api_service.bounces.reports import complaint_from_authority
from api_service.bounces.verp import return_path
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH
from tests.conftest import ACCOUNT_TOKEN
from tests.factories import ACCOUNT, ServerHandle, message, sending_server


def arf(*, reporter: str, complainant: str) -> bytes:
    return (
        f"From: <{reporter}>\r\n"
        "Subject: FW: Hello\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: Test/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{complainant}>\r\n"
        "\r\n--b--\r\n"
    ).encode()


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient) -> ServerHandle:
    return await sending_server(client)


async def send_to_two(client: httpx.AsyncClient, server: ServerHandle) -> str:
    sent = await client.post("/email", json=message(To="victim@victim.example, attacker@attacker.example"), headers=server.headers)
    assert sent.status_code == 200, sent.text
    return str(sent.json()["MessageID"])


async def report(client: httpx.AsyncClient, message_id: str, raw: bytes, mail_from: str = "") -> int:
    body = {
        "RcptTo": [
            return_path(
                message_id=uuid.UUID(message_id), recipient="victim@victim.example", domain="bounces.postgate.test", secret=ACCOUNT_TOKEN
            )
        ],
        "RawMessage": base64.b64encode(raw).decode(),
        "MailFrom": mail_from,
    }
    response = await client.post(BOUNCE_REPORT_PATH, json=body, headers=ACCOUNT)
    assert response.status_code == 200, response.text
    return int(response.json()["Matched"])


async def inactive(client: httpx.AsyncClient, server: ServerHandle) -> list[str]:
    dump = await client.get("/message-streams/outbound/suppressions/dump", headers=server.headers)
    return sorted(s["EmailAddress"] for s in dump.json()["Suppressions"])


@pytest.mark.asyncio
class TestForgedComplaints:
    async def test_another_recipient_cannot_get_someone_suppressed(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send_to_two(client, server)
        forged = arf(reporter="attacker@attacker.example", complainant="victim@victim.example")
        assert await report(client, message_id, forged, mail_from="attacker@attacker.example") == 0
        assert await inactive(client, server) == []

    async def test_complaint_from_the_recipient_s_domain_counts(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send_to_two(client, server)
        genuine = arf(reporter="fbl@feedback.victim.example", complainant="victim@victim.example")
        assert await report(client, message_id, genuine) == 1
        assert await inactive(client, server) == ["victim@victim.example"]

    async def test_complaint_from_a_configured_feedback_loop_counts(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send_to_two(client, server)
        # The tests' settings name hotmail.example as a feedback loop.
        looped = arf(reporter="staff@hotmail.example", complainant="victim@victim.example")
        assert await report(client, message_id, looped) == 1
        assert await inactive(client, server) == ["victim@victim.example"]


@pytest.mark.asyncio
class TestLiftingAComplaint:
    async def test_customer_can_lift_a_complaint_only_by_saying_so(self, client: httpx.AsyncClient, server: ServerHandle) -> None:
        message_id = await send_to_two(client, server)
        await report(client, message_id, arf(reporter="fbl@victim.example", complainant="victim@victim.example"))
        path = "/message-streams/outbound/suppressions/delete"
        plain = await client.post(path, json={"Suppressions": [{"EmailAddress": "victim@victim.example"}]}, headers=server.headers)
        [refused] = plain.json()["Suppressions"]
        assert refused["Status"] == "Failed"
        assert "LiftSpamComplaint" in refused["Message"]
        assert await inactive(client, server) == ["victim@victim.example"]
        explicit = {"Suppressions": [{"EmailAddress": "victim@victim.example", "LiftSpamComplaint": True}]}
        [lifted] = (await client.post(path, json=explicit, headers=server.headers)).json()["Suppressions"]
        assert lifted["Status"] == "Deleted"
        assert await inactive(client, server) == []
        again = await client.post("/email", json=message(To="victim@victim.example"), headers=server.headers)
        assert again.status_code == 200


class TestAuthorityRule:
    @pytest.mark.parametrize(
        ("senders", "loops", "expected"),
        [
            (["abuse@example.net"], [], True),
            (["fbl@mail.example.net"], [], True),
            (["x@notexample.net"], [], False),
            (["x@example.net.evil.example"], [], False),
            (["staff@hotmail.example"], ["hotmail.example"], True),
            (["staff@fbl.hotmail.example"], ["hotmail.example"], True),
            (["staff@hotmail.example"], ["other@hotmail.example"], False),
            (["other@hotmail.example"], ["other@hotmail.example"], True),
            ([], ["hotmail.example"], False),
        ],
    )
    def test_who_speaks_for_a_recipient(self, senders: list[str], loops: list[str], expected: bool) -> None:
        assert complaint_from_authority(complainant="user@example.net", senders=senders, feedback_loops=loops) is expected
