"""Over real HTTP and a real SMTP sink: a tracked message arrives with a pixel and rewritten
links; fetching them as a mail client does records the open and the click, fires the webhooks
and shows them in the opens, clicks, details and stats endpoints."""

from __future__ import annotations

import base64
import uuid
from email import policy
from email.message import EmailMessage
from typing import Any

import dkim
import httpx
import pytest
import pytest_asyncio

from api_service.tracking import tokens
from tests.api.conftest import Receiver, SinkHandler, Worker
from tests.api.tracking.conftest import CHROME_MAC, IPHONE_MAIL, read_copy
from tests.factories import ACCOUNT, INTERNAL, ServerHandle, create_domain, create_server, message

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

HTML = (
    '<html><body><p>Welcome! <a href="https://example.com/welcome?a=1&amp;b=2">Start</a> '
    '<a href="mailto:help@example.org">Mail us</a> <a data-pm-no-track href="https://example.com/private">Private</a></p></body></html>'
)
TEXT = "Welcome! Start at https://example.com/text-start. Mail help@example.org."


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient, receiver: Receiver) -> ServerHandle:
    server = await create_server(client)
    await create_domain(client, "example.org")
    hook = {"Url": receiver.url, "Triggers": {"Open": {"Enabled": True}, "Click": {"Enabled": True}}}
    assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
    first_only = {"Url": receiver.url + "/first-only", "Triggers": {"Open": {"Enabled": True, "PostFirstOpenOnly": True}}}
    assert (await client.post("/webhooks", json=first_only, headers=server.headers)).status_code == 200
    legacy = {"OpenHookUrl": receiver.url + "/legacy-open", "ClickHookUrl": receiver.url + "/legacy-click", "PostFirstOpenOnly": True}
    assert (await client.put("/server", json=legacy, headers=server.headers)).status_code == 200
    return server


async def hooks(worker: Worker, receiver: Receiver) -> list[tuple[str, dict[str, Any]]]:
    async with httpx.AsyncClient() as http:
        await worker.hooks(http)
    found = [(h.path, h.json) for h in receiver.hooks]
    receiver.hooks.clear()
    return found


class TestOpenAndClickTracking:
    async def test_pixel_and_link_are_recorded_with_webhooks_and_api(
        self,
        client: httpx.AsyncClient,
        server: ServerHandle,
        tracking_worker: Worker,
        sink: tuple[SinkHandler, int],
        receiver: Receiver,
        live_api: str,
    ) -> None:
        sent = await client.post(
            "/email",
            json=message(
                From="App <app@example.org>",
                To="reader@example.net",
                HtmlBody=HTML,
                TextBody=TEXT,
                TrackOpens=True,
                TrackLinks="HtmlAndText",
                Tag="welcome",
                Metadata={"user": "42"},
            ),
            headers=server.headers,
        )
        assert sent.status_code == 200, sent.text
        message_id = sent.json()["MessageID"]
        assert await tracking_worker.deliver() == 1
        [received] = sink[0].received
        copy = read_copy(received.data)

        # What was delivered: DKIM signs the personalised copy; links and pixel point at Postgate.
        record = (await client.get("/domains/1", headers=ACCOUNT)).json()
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: str(record["DKIMTextValue"]).encode())
        [pixel] = copy.urls(live_api, "o", copy.html)
        [html_link] = copy.urls(live_api, "c", copy.html)
        [text_link] = copy.urls(live_api, "c", copy.text)
        assert "https://example.com/welcome" not in copy.html
        assert 'href="mailto:help@example.org"' in copy.html
        assert 'href="https://example.com/private"' in copy.html
        assert "https://example.com/text-start" not in copy.text
        assert copy.text.startswith("Welcome! Start at ")
        assert copy.text.rstrip().endswith(". Mail help@example.org.")

        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as mail_client:
            opened = await mail_client.get(pixel)
            assert opened.status_code == 200
            assert opened.headers["content-type"] == "image/gif"
            assert opened.content.startswith(b"GIF89a")
            assert "no-store" in opened.headers["cache-control"]
            followed = await mail_client.get(html_link)
            assert followed.status_code == 302
            assert followed.headers["location"] == "https://example.com/welcome?a=1&b=2"
            followed_text = await mail_client.get(text_link)
            assert followed_text.headers["location"] == "https://example.com/text-start"
        async with httpx.AsyncClient(headers={"User-Agent": IPHONE_MAIL}) as phone:
            assert (await phone.get(pixel)).status_code == 200

        delivered = await hooks(tracking_worker, receiver)
        opens = [body for path, body in delivered if body["RecordType"] == "Open" and path == "/hook"]
        clicks = [body for path, body in delivered if body["RecordType"] == "Click"]
        # The webhook gets both opens; one with PostFirstOpenOnly, and the legacy OpenHookUrl
        # (the server's PostFirstOpenOnly), only the first.
        assert sorted((path, body["FirstOpen"]) for path, body in delivered if body["RecordType"] == "Open") == [
            ("/hook", False),
            ("/hook", True),
            ("/hook/first-only", True),
            ("/hook/legacy-open", True),
        ]
        first = next(o for o in opens if o["FirstOpen"])
        assert first["MessageID"] == message_id
        assert first["Recipient"] == "reader@example.net"
        assert first["MessageStream"] == "outbound"
        assert first["Tag"] == "welcome"
        assert first["Metadata"] == {"user": "42"}
        assert first["Client"] == {"Name": "Chrome 120.0", "Company": "Google", "Family": "Chrome"}
        assert first["OS"]["Family"] == "Mac OS X"
        assert first["Platform"] == "Desktop"
        assert first["UserAgent"] == CHROME_MAC
        assert first["Geo"] == {"IP": "127.0.0.1"}
        assert {"ReceivedAt", "ReadSeconds"} <= set(first)
        later = next(o for o in opens if not o["FirstOpen"])
        assert later["Platform"] == "Mobile"
        assert sorted((c["ClickLocation"], c["OriginalLink"]) for c in clicks) == [
            ("HTML", "https://example.com/welcome?a=1&b=2"),
            ("HTML", "https://example.com/welcome?a=1&b=2"),
            ("Text", "https://example.com/text-start"),
            ("Text", "https://example.com/text-start"),
        ]  # each click to the stream's webhook and to the legacy ClickHookUrl

        # A second click on the same link is recorded, but not sent again.
        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as mail_client:
            assert (await mail_client.get(html_link)).status_code == 302
        assert [body["RecordType"] for _, body in await hooks(tracking_worker, receiver)] == []

        listed = (await client.get("/messages/outbound/opens?count=10&offset=0", headers=server.headers)).json()
        assert listed["TotalCount"] == 2
        assert {o["Platform"] for o in listed["Opens"]} == {"Desktop", "Mobile"}
        assert listed["Opens"][0]["RecordType"] == "Open"
        by_message = (await client.get(f"/messages/outbound/opens/{message_id}?count=10&offset=0", headers=server.headers)).json()
        assert by_message["TotalCount"] == 2
        filtered = await client.get("/messages/outbound/opens?count=10&offset=0&platform=mobile", headers=server.headers)
        assert filtered.json()["TotalCount"] == 1
        clicks_listed = (await client.get("/messages/outbound/clicks?count=10&offset=0&tag=welcome", headers=server.headers)).json()
        assert clicks_listed["TotalCount"] == 3
        assert {c["OriginalLink"] for c in clicks_listed["Clicks"]} == {
            "https://example.com/welcome?a=1&b=2",
            "https://example.com/text-start",
        }
        one = (await client.get(f"/messages/outbound/clicks/{message_id}?count=1&offset=0", headers=server.headers)).json()
        assert one["TotalCount"] == 3
        assert len(one["Clicks"]) == 1

        details = (await client.get(f"/messages/outbound/{message_id}/details", headers=server.headers)).json()
        kinds = [e["Type"] for e in details["MessageEvents"]]
        assert kinds.count("Opened") == 2
        assert kinds.count("LinkClicked") == 3
        clicked = next(e for e in details["MessageEvents"] if e["Type"] == "LinkClicked")
        assert clicked["Details"]["ClickLocation"] in ("HTML", "Text")
        assert clicked["Details"]["Link"].startswith("https://example.com/")

        stats = (await client.get("/stats/outbound", headers=server.headers)).json()
        assert (stats["Sent"], stats["Tracked"], stats["WithOpenTracking"], stats["WithLinkTracking"]) == (1, 1, 1, 1)
        assert stats["TotalTrackedLinksSent"] == 2
        # The clicks came within seconds of delivery, as a scanner's do: people-only stats leave them out.
        assert (stats["Opens"], stats["UniqueOpens"], stats["TotalClicks"], stats["UniqueLinksClicked"]) == (2, 1, 0, 0)
        assert (stats["MachineOpens"], stats["MachineClicks"]) == (0, 3)
        stats = (await client.get("/stats/outbound?includeMachines=true", headers=server.headers)).json()
        assert (stats["Opens"], stats["UniqueOpens"], stats["TotalClicks"], stats["UniqueLinksClicked"]) == (2, 1, 3, 2)
        assert stats["WithClientRecorded"] == 1
        platforms = (await client.get("/stats/outbound/opens/platforms", headers=server.headers)).json()
        assert (platforms["Desktop"], platforms["Mobile"]) == (1, 1)
        assert len(platforms["Days"]) == 1
        locations = (await client.get("/stats/outbound/clicks/location?tag=welcome&includeMachines=true", headers=server.headers)).json()
        assert (locations["HTML"], locations["Text"]) == (2, 1)
        browsers = (await client.get("/stats/outbound/clicks/browserfamilies?includeMachines=true", headers=server.headers)).json()
        assert browsers["Chrome"] == 3
        none = (await client.get("/stats/outbound/opens?tag=other", headers=server.headers)).json()
        assert none == {"Days": [], "Opens": 0, "Unique": 0}

    async def test_redirect_refuses_what_was_not_sealed_into_the_message(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int], live_api: str
    ) -> None:
        for to in ("one@example.net", "two@example.net"):
            body = message(From="app@example.org", To=to, HtmlBody=HTML, TrackLinks="HtmlOnly", TrackOpens=True)
            assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 2
        first, second = (read_copy(r.data) for r in sink[0].received)
        [link] = first.urls(live_api, "c", first.html)
        [other_link] = second.urls(live_api, "c", second.html)
        [pixel] = first.urls(live_api, "o", first.html)
        token = link.rsplit("/", 1)[1]
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        other = base64.urlsafe_b64decode(other_link.rsplit("/", 1)[1] + "==")
        forged = {
            "flipped": raw[:-1] + bytes([raw[-1] ^ 1]),
            "other message's id": other[:16] + raw[16:],
            "unknown message": uuid.uuid4().bytes + raw[16:],
            "truncated": raw[:20],
        }
        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as mail_client:
            for name, data in forged.items():
                url = f"{live_api}/t/c/{base64.urlsafe_b64encode(data).rstrip(b'=').decode()}"
                assert (await mail_client.get(url)).status_code == 404, name
            guessed = tokens.seal(
                "not-the-server-secret",
                tokens.Payload(tokens.Kind.CLICK, uuid.UUID(bytes=raw[:16]), "one@example.net", None, "https://evil.example"),
            )
            assert (await mail_client.get(f"{live_api}/t/c/{guessed}")).status_code == 404
            assert (await mail_client.get(f"{live_api}/t/c/{token.swapcase()}")).status_code == 404
            # The pixel never tells: a forged one is still a GIF, and records nothing.
            assert (await mail_client.get(f"{live_api}/t/o/{token}")).headers["content-type"] == "image/gif"
            assert (await mail_client.get(f"{live_api}/t/o/garbage")).status_code == 200
            # A click token is not an open token.
            assert (await mail_client.get(pixel.replace("/t/o/", "/t/c/"))).status_code == 404
        assert (await client.get("/messages/outbound/opens?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0
        assert (await client.get("/messages/outbound/clicks?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 0

    async def test_untracked_message_goes_unchanged_one_copy_signed_once(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int]
    ) -> None:
        body = message(From="app@example.org", To="a@example.net, b@example.net", HtmlBody=HTML, TextBody=TEXT)
        assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 2
        # One transaction per recipient (its return path is signed for it), the same signed copy.
        first, second = sink[0].received
        assert sorted(first.rcpt_tos + second.rcpt_tos) == ["a@example.net", "b@example.net"]
        assert first.data == second.data
        assert first.mail_from != second.mail_from
        copy = read_copy(first.data)
        assert "https://example.com/welcome?a=1&amp;b=2" in copy.html
        assert "/t/" not in copy.html
        assert "List-Unsubscribe" not in copy.message

    async def test_server_setting_forces_open_tracking_and_each_recipient_gets_own_copy(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int], live_api: str
    ) -> None:
        await client.put("/server", json={"TrackOpens": True}, headers=server.headers)
        body = message(From="app@example.org", To="a@example.net, b@example.net", HtmlBody=HTML, TrackOpens=False)
        assert (await client.post("/email", json=body, headers=server.headers)).status_code == 200
        assert await tracking_worker.deliver() == 2
        assert sorted(r.rcpt_tos[0] for r in sink[0].received) == ["a@example.net", "b@example.net"]
        assert all(len(r.rcpt_tos) == 1 for r in sink[0].received)
        pixels = [read_copy(r.data).urls(live_api, "o", read_copy(r.data).html)[0] for r in sink[0].received]
        assert pixels[0] != pixels[1]


class TestSmtpSubmissions:
    async def test_x_pm_track_headers_over_smtp(
        self, client: httpx.AsyncClient, server: ServerHandle, tracking_worker: Worker, sink: tuple[SinkHandler, int], live_api: str
    ) -> None:
        """What the SMTP gateway hands the API: a mail program's MIME with Postmark's control headers."""
        await client.put("/server", json={"SmtpApiActivated": True}, headers=server.headers)
        submitted = EmailMessage()
        submitted["From"] = "App <app@example.org>"
        submitted["To"] = "reader@example.net"
        submitted["Subject"] = "Over SMTP"
        submitted["X-PM-TrackOpens"] = "true"
        submitted["X-PM-TrackLinks"] = "HtmlOnly"
        submitted.set_content("Start at https://example.com/text")
        submitted.add_alternative(HTML, subtype="html")
        submitted.add_attachment(b"%PDF-1.4 binary \x00\xff", maintype="application", subtype="pdf", filename="a.pdf")
        raw = submitted.as_bytes(policy=policy.SMTP)
        body = {"MailFrom": "app@example.org", "RcptTo": ["reader@example.net"], "RawMessage": base64.b64encode(raw).decode()}
        stored = await client.post("/internal/smtp/messages", json=body, headers=server.headers | INTERNAL)
        assert stored.json()["Accepted"] == 1, stored.text
        assert await tracking_worker.deliver() == 1
        [received] = sink[0].received
        copy = read_copy(received.data)
        assert "X-PM-TrackOpens" not in copy.message
        assert len(copy.urls(live_api, "o", copy.html)) == 1
        assert len(copy.urls(live_api, "c", copy.html)) == 1
        assert "https://example.com/text" in copy.text  # HtmlOnly: text links stay
        [attachment] = list(copy.message.iter_attachments())
        assert attachment.get_content() == b"%PDF-1.4 binary \x00\xff"
        async with httpx.AsyncClient(headers={"User-Agent": CHROME_MAC}) as mail_client:
            assert (await mail_client.get(copy.urls(live_api, "c", copy.html)[0])).headers[
                "location"
            ] == "https://example.com/welcome?a=1&b=2"
