"""Broadcasts carry RFC 2369 and RFC 8058 List-Unsubscribe headers; a one-click POST suppresses the
recipient on that stream, fires SubscriptionChange, and the next send to them answers 406."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.conftest import Receiver, SinkHandler, Worker
from tests.api.tracking.conftest import CHROME_MAC, read_copy
from tests.factories import ACCOUNT, ServerHandle, create_domain, create_server, message

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

HTML = '<p>News</p><p><a href="{{{ pm:unsubscribe }}}">Unsubscribe</a> · <a href="https://example.com/news">Read</a></p>'
TEXT = "News\nUnsubscribe: {{{ pm:unsubscribe }}}\n"


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient, receiver: Receiver) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    hook = {"Url": receiver.url, "MessageStream": "broadcast", "Triggers": {"SubscriptionChange": {"Enabled": True}}}
    assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
    return server


def broadcast(**overrides: Any) -> dict[str, Any]:
    return message(From="News <news@example.org>", MessageStream="broadcast", HtmlBody=HTML, TextBody=TEXT, **overrides)


def header_urls(value: str) -> tuple[str, str]:
    https, mailto = re.findall(r"<([^>]+)>", value)
    return https, mailto


class TestOneClickUnsubscribe:
    async def test_headers_placeholder_one_click_and_406(
        self,
        client: httpx.AsyncClient,
        server: ServerHandle,
        tracking_worker: Worker,
        sink: tuple[SinkHandler, int],
        receiver: Receiver,
        live_api: str,
    ) -> None:
        sent = await client.post("/email", json=broadcast(To="fan@example.net, other@example.net", Tag="news"), headers=server.headers)
        assert sent.status_code == 200, sent.text
        assert await tracking_worker.deliver() == 2
        copies = {r.rcpt_tos[0]: read_copy(r.data) for r in sink[0].received}
        assert sorted(copies) == ["fan@example.net", "other@example.net"]  # one transaction each
        copy = copies["fan@example.net"]
        assert copy.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = header_urls(str(copy.message["List-Unsubscribe"]))
        assert https.startswith(f"{live_api}/t/u/")
        assert mailto.startswith("mailto:unsubscribe@bounces.postgate.test?subject=unsubscribe%20")
        assert f'href="{https}"' in copy.html  # the placeholder, filled in and not tracked
        assert f"Unsubscribe: {https}" in copy.text
        assert "pm:unsubscribe" not in copy.html + copy.text
        assert https != header_urls(str(copies["other@example.net"].message["List-Unsubscribe"]))[0]

        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as browser:
            page = await browser.get(https)
            assert page.status_code == 200
            assert "fan@example.net" in page.text
            assert "<form" in page.text
            # Looking at the page changes nothing.
            again = await client.post("/email", json=broadcast(To="fan@example.net"), headers=server.headers)
            assert again.status_code == 200
            # What Gmail and Yahoo send (RFC 8058).
            clicked = await browser.post(
                https, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            assert clicked.status_code == 200
            assert "fan@example.net" in clicked.text
            assert (await browser.post(https, data={"List-Unsubscribe": "One-Click"})).status_code == 200  # twice is harmless
            assert (await browser.post(https.replace("/t/u/", "/t/u/x"))).status_code == 404

        dump = (await client.get("/message-streams/broadcast/suppressions/dump", headers=server.headers)).json()["Suppressions"]
        assert [(s["EmailAddress"], s["SuppressionReason"], s["Origin"]) for s in dump] == [
            ("fan@example.net", "ManualSuppression", "Recipient")
        ]
        async with httpx.AsyncClient() as http:
            await tracking_worker.hooks(http)
        [change] = [h.json for h in receiver.hooks]
        assert change["RecordType"] == "SubscriptionChange"
        assert (change["Recipient"], change["Origin"], change["SuppressSending"]) == ("fan@example.net", "Recipient", True)
        assert change["SuppressionReason"] == "ManualSuppression"
        assert change["MessageID"] == sent.json()["MessageID"]
        assert change["Tag"] == "news"

        refused = await client.post("/email", json=broadcast(To="fan@example.net"), headers=server.headers)
        assert refused.status_code == 422
        assert refused.json()["ErrorCode"] == 406
        # Suppressions are per stream: transactional mail still reaches them.
        transactional = await client.post("/email", json=message(From="app@example.org", To="fan@example.net"), headers=server.headers)
        assert transactional.status_code == 200
        details = (await client.get(f"/messages/outbound/{sent.json()['MessageID']}/details", headers=server.headers)).json()
        assert [e["Details"] for e in details["MessageEvents"] if e["Type"] == "SubscriptionChanged"] == [
            {"Origin": "Recipient", "SuppressSending": True}
        ]

    async def test_mailto_unsubscribe_through_the_return_path_listener(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        await client.post("/email", json=broadcast(To="fan@example.net"), headers=server.headers)
        await tracking_worker.deliver()
        [received] = sink[0].received
        _, mailto = header_urls(str(read_copy(received.data).message["List-Unsubscribe"]))
        address, _, query = mailto.removeprefix("mailto:").partition("?subject=")
        subject = query.replace("%20", " ")
        mail = f"From: fan@example.net\r\nTo: {address}\r\nSubject: {subject}\r\n\r\nunsubscribe\r\n".encode()
        report = {"RcptTo": [address], "RawMessage": base64.b64encode(mail).decode()}
        answer = await client.post("/internal/bounce-reports", json=report, headers=ACCOUNT)
        assert answer.json() == {"Matched": 1}
        dump = (await client.get("/message-streams/broadcast/suppressions/dump", headers=server.headers)).json()["Suppressions"]
        assert [s["EmailAddress"] for s in dump] == ["fan@example.net"]

    async def test_transactional_and_custom_streams_get_no_unsubscribe(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        custom: dict[str, Any] = {"ID": "digest", "Name": "Digest", "MessageStreamType": "Broadcasts"}
        custom["SubscriptionManagementConfiguration"] = {"UnsubscribeHandlingType": "Custom"}
        assert (await client.post("/message-streams", json=custom, headers=server.headers)).status_code == 200
        for stream in ("outbound", "digest"):
            body = message(From="app@example.org", To="a@example.net, b@example.net", HtmlBody=HTML, MessageStream=stream)
            assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 4
        assert len(sink[0].received) == 4  # one transaction per recipient (its own return path), the copies the same
        for received in sink[0].received:
            copy = read_copy(received.data)
            assert "List-Unsubscribe" not in copy.message
            assert "{{{ pm:unsubscribe }}}" in copy.html
