"""The console's pages over the in-process app: sign-in, CSRF, every page, and that changes go
through the domain services (the API sees them)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api_service.bounces.service import record_bounce
from api_service.config import Settings
from api_service.console import cli
from api_service.console import service as console_service
from api_service.domains.dns import ResolverLookup
from api_service.models import ConsoleSession, DeliveryDestination, WebhookDelivery
from api_service.servers.service import get_server_or_raise
from api_service.tracking import tokens
from api_service.webhooks.tasks import send_due
from shared.constants import BounceType, ClickLocation
from tests.console.conftest import Console, csrf_of, sign_in, signed_in_console
from tests.factories import ACCOUNT, ServerHandle, create_server, message, sending_server

pytestmark = pytest.mark.asyncio

CHROME_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
SAFARI_IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options")


async def send(client: httpx.AsyncClient, server: ServerHandle, **fields: Any) -> str:
    response = await client.post("/email", json=message(**fields), headers=server.headers)
    assert response.status_code == 200, response.text
    message_id: str = response.json()["MessageID"]
    return message_id


async def track(
    app: FastAPI,
    client: httpx.AsyncClient,
    server: ServerHandle,
    message_id: str,
    *,
    recipient: str,
    user_agent: str,
    link: str | None = None,
) -> None:
    """Fetch the message's open pixel, or one of its tracked links, as the recipient's mail client would."""
    async with app.state.sessionmaker() as session:
        secret = (await get_server_or_raise(session=session, server_id=server.id)).tracking_secret
    if link is None:
        token = tokens.seal(secret, tokens.Payload(tokens.Kind.OPEN, uuid.UUID(message_id), recipient))
        assert (await client.get(f"/t/o/{token}", headers={"User-Agent": user_agent})).status_code == 200
    else:
        token = tokens.seal(secret, tokens.Payload(tokens.Kind.CLICK, uuid.UUID(message_id), recipient, ClickLocation.HTML, link))
        followed = await client.get(f"/t/c/{token}", headers={"User-Agent": user_agent})
        assert followed.is_redirect


async def add_bounce(app: FastAPI, server: ServerHandle, *, email: str, bounce_type: BounceType = BounceType.HARD_BOUNCE) -> int:
    async with app.state.sessionmaker() as session, session.begin():
        bounce = await record_bounce(
            session=session, server_id=server.id, bounce_type=bounce_type, email=email, details="550 5.1.1 unknown"
        )
        return bounce.id


class TestSignIn:
    async def test_pages_redirect_to_sign_in_with_the_page_to_return_to(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/console/servers/1/activity?tag=x")
        assert response.status_code == 303
        assert response.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fservers%2F1%2Factivity%3Ftag%3Dx"

    async def test_account_token_signs_in_as_admin_with_a_strict_cookie(self, client: httpx.AsyncClient) -> None:
        response = await sign_in(client)
        assert response.status_code == 303
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("postgate_console="))
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/console" in cookie
        assert "Secure" not in cookie
        page = await client.get("/console/servers")
        assert page.status_code == 200
        assert "Signed in as <strong>admin</strong>" in page.text

    async def test_cookie_is_secure_over_https(self, app: FastAPI) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://postgate.test") as client:
            response = await sign_in(client)
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("postgate_console="))
        assert "Secure" in cookie

    async def test_wrong_password_is_refused_then_throttled(self, client: httpx.AsyncClient, settings: Settings) -> None:
        for _ in range(settings.console_failures_before_delay):
            refused = await sign_in(client, password="wrong")
            assert refused.status_code == 401
            assert "Wrong user name or password." in refused.text
        throttled = await sign_in(client)  # even the right token, from the address that failed, must wait
        assert throttled.status_code == 429
        assert "Too many failed sign-ins" in throttled.text
        assert int(throttled.headers["Retry-After"]) > 0

    async def test_form_without_its_token_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/console/sign-in", data={"username": "admin", "password": "test-account-token"})
        assert response.status_code == 400
        assert "postgate_console=" not in response.headers.get("set-cookie", "")

    async def test_next_never_leaves_the_console(self, client: httpx.AsyncClient) -> None:
        form = await client.get("/console/sign-in")
        response = await client.post(
            "/console/sign-in",
            data={"csrf_token": csrf_of(form.text), "username": "admin", "password": "test-account-token", "next": "//evil.example/x"},
        )
        assert response.headers["location"] == "/console/servers"

    async def test_sign_out_ends_the_session_on_the_server(self, app: FastAPI, console: Console) -> None:
        cookie = console.client.cookies["postgate_console"]
        response = await console.post("/console/sign-out")
        assert response.headers["location"] == "/console/sign-in?notice=signed-out"
        console.client.cookies.set("postgate_console", cookie, path="/console")  # a copy kept by a thief
        assert (await console.get("/console/servers")).status_code == 303
        async with app.state.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(ConsoleSession))).scalar_one() == 0

    async def test_console_user_made_on_the_command_line_signs_in(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        code = await asyncio.to_thread(
            cli.main, ["create-user", "Alice"], read_password=lambda _: "correct horse battery", settings=settings
        )
        assert code == 0
        console = await signed_in_console(client, "alice", "correct horse battery")
        assert "Signed in as <strong>alice</strong>" in (await console.get("/console/servers")).text

    async def test_new_password_ends_the_users_sessions(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await console_service.create_user(session=session, username="bob", password="first password")
        await signed_in_console(client, "bob", "first password")
        async with app.state.sessionmaker() as session, session.begin():
            await console_service.set_password(session=session, username="bob", password="second password")
        assert (await client.get("/console/servers")).status_code == 303

    async def test_cli_refuses_differing_passwords_and_the_admin_name(self, settings: Settings, app: FastAPI) -> None:
        answers = iter(["one password", "another one"])
        assert await asyncio.to_thread(cli.main, ["create-user", "carol"], read_password=lambda _: next(answers), settings=settings) == 1
        assert await asyncio.to_thread(cli.main, ["create-user", "admin"], read_password=lambda _: "long enough pw", settings=settings) == 1


class TestCsrf:
    async def test_post_without_token_is_refused_and_changes_nothing(self, console: Console) -> None:
        response = await console.client.post("/console/servers", data={"name": "Sneaky"})
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]
        assert "Sneaky" not in (await console.get("/console/servers")).text

    async def test_post_with_another_sessions_token_is_refused(self, console: Console) -> None:
        response = await console.client.post("/console/servers", data={"name": "Sneaky", "csrf_token": "x" * 43})
        assert response.status_code == 403


class TestServers:
    async def test_created_server_token_is_shown_once_and_works_on_the_api(self, console: Console) -> None:
        response = await console.post("/console/servers", {"name": "Production", "color": "blue", "delivery_type": "Live"})
        assert response.status_code == 201
        token = re.search(r'id="server-token">([^<]+)<', response.text)
        assert token
        api = await console.client.get("/server", headers={"X-Postmark-Server-Token": token.group(1)})
        assert api.json()["Name"] == "Production"
        assert api.json()["Color"] == "blue"
        assert token.group(1) not in (await console.get("/console/servers")).text

    async def test_refused_name_shows_the_reason_and_stores_nothing(self, console: Console) -> None:
        await create_server(console.client, "Taken")
        response = await console.post("/console/servers", {"name": "Taken", "color": "purple", "delivery_type": "Live"})
        assert response.status_code == 422
        assert "This server name already exists." in response.text
        total = (await console.client.get("/servers?count=10&offset=0", headers=ACCOUNT)).json()["TotalCount"]
        assert total == 1

    async def test_colour_and_delete(self, console: Console) -> None:
        server = await create_server(console.client, "Staging")
        assert (await console.post(f"/console/servers/{server.id}/color", {"color": "green"})).status_code == 303
        assert (await console.client.get("/server", headers=server.headers)).json()["Color"] == "green"
        assert "Delete Staging?" in (await console.get(f"/console/servers/{server.id}/delete")).text
        assert (await console.post(f"/console/servers/{server.id}/delete")).headers["location"] == "/console/servers?notice=server-deleted"
        assert (await console.client.get("/server", headers=server.headers)).status_code == 401


class TestActivity:
    async def test_search_by_each_filter(self, console: Console) -> None:
        server = await sending_server(console.client)
        await send(console.client, server, To="ann@example.net", Subject="Invoice 1", Tag="billing")
        await send(console.client, server, To="bob@example.net", Subject="Welcome", Tag="onboarding")
        url = f"/console/servers/{server.id}/activity"
        assert "Invoice 1" in (await console.get(url, recipient="ann@")).text
        assert "Invoice 1" not in (await console.get(url, recipient="bob@")).text
        assert "Welcome" in (await console.get(url, subject="welc")).text
        assert "Welcome" not in (await console.get(url, tag="billing")).text
        assert "Welcome" in (await console.get(url, status="Queued", stream="outbound")).text
        assert "No messages match" in (await console.get(url, status="Sent")).text
        assert "No messages match" in (await console.get(url, fromdate="2001-01-01", todate="2001-01-02")).text

    async def test_scheduled_message_is_shown_and_cancelled(self, console: Console) -> None:
        server = await sending_server(console.client)
        send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        message_id = await send(console.client, server, Subject="Later", SendAt=send_at)
        url = f"/console/servers/{server.id}/activity"
        assert "Later" in (await console.get(url, status="Scheduled")).text
        page_url = f"/console/servers/{server.id}/messages/{message_id}"
        page = (await console.get(page_url)).text
        assert "scheduled for" in page
        assert "Cancel sending" in page
        cancelled = await console.post(f"{page_url}/cancel")
        assert cancelled.headers["location"].endswith("notice=schedule-cancelled")
        page = (await console.get(page_url)).text
        assert "badge-cancelled" in page
        assert "Cancel sending" not in page
        again = await console.post(f"{page_url}/cancel")
        assert again.headers["location"].endswith("notice=schedule-too-late")

    async def test_paging(self, console: Console) -> None:
        server = await sending_server(console.client)
        for i in range(26):
            await send(console.client, server, Subject=f"Number {i:02d}")
        first = (await console.get(f"/console/servers/{server.id}/activity")).text
        second = (await console.get(f"/console/servers/{server.id}/activity", page="2")).text
        assert "Page 1 of 2" in first
        assert "Number 25" in first
        assert "Number 00" not in first
        assert "Number 00" in second
        assert 'hx-trigger="every 5s"' in first  # the first page refreshes itself
        assert 'hx-trigger="every 5s"' not in second

    async def test_bad_date_is_explained_not_a_500(self, console: Console) -> None:
        server = await sending_server(console.client)
        response = await console.get(f"/console/servers/{server.id}/activity", fromdate="yesterday")
        assert response.status_code == 422
        assert "is not a valid date" in response.text

    async def test_rows_partial_is_the_table_body_only(self, console: Console) -> None:
        server = await sending_server(console.client)
        await send(console.client, server, Subject="Live one")
        rows = await console.get(f"/console/servers/{server.id}/activity/rows", subject="Live")
        assert rows.text.startswith('<tbody id="activity-rows"')
        assert "Live one" in rows.text
        assert "subject=Live" in rows.text


class TestMessagePage:
    async def test_page_escapes_the_message_and_frames_its_html_sandboxed(self, console: Console) -> None:
        server = await sending_server(console.client)
        message_id = await send(
            console.client,
            server,
            Subject="<script>alert(1)</script>",
            HtmlBody="<p>Hi</p><script>alert(2)</script>",
            TextBody="plain & simple",
        )
        page = await console.get(f"/console/servers/{server.id}/messages/{message_id}")
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "plain &amp; simple" in page.text
        assert re.search(r"<iframe class=\"preview\" sandbox title=", page.text)
        assert "<script>alert(2)" not in page.text  # the HTML body runs only in the frame; the raw source is escaped
        assert "Queued" in page.text
        frame = await console.get(f"/console/servers/{server.id}/messages/{message_id}/html")
        csp = frame.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "sandbox" in csp
        assert "script-src" not in csp
        assert "https:" not in csp
        assert frame.headers["x-frame-options"] == "SAMEORIGIN"
        assert frame.headers["referrer-policy"] == "no-referrer"

    async def test_remote_images_load_only_after_asking(self, console: Console) -> None:
        server = await sending_server(console.client)
        message_id = await send(console.client, server, HtmlBody='<img src="https://tracker.example/pixel.gif">')
        page = await console.get(f"/console/servers/{server.id}/messages/{message_id}")
        assert "Load images" in page.text
        assert "/html?images=1" not in page.text
        loaded = await console.get(f"/console/servers/{server.id}/messages/{message_id}", images="1")
        assert "/html?images=1" in loaded.text
        frame = await console.get(f"/console/servers/{server.id}/messages/{message_id}/html", images="1")
        assert "img-src data: cid: http: https:" in frame.headers["content-security-policy"]

    async def test_headers_raw_source_and_download(self, console: Console) -> None:
        server = await sending_server(console.client)
        message_id = await send(console.client, server, Subject="Grüße")
        page = await console.get(f"/console/servers/{server.id}/messages/{message_id}")
        assert "Grüße" in page.text
        assert "Raw source" in page.text
        raw = await console.get(f"/console/servers/{server.id}/messages/{message_id}/raw")
        assert raw.headers["content-type"] == "message/rfc822"
        assert b"Subject:" in raw.content

    async def test_opens_and_clicks_in_the_timeline_with_client_os_platform_and_link(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        message_id = await send(
            console.client, server, To="reader@example.net", HtmlBody='<a href="https://example.com/pricing">Prices</a>'
        )
        await track(app, console.client, server, message_id, recipient="reader@example.net", user_agent=CHROME_WINDOWS)
        await track(
            app,
            console.client,
            server,
            message_id,
            recipient="reader@example.net",
            user_agent=SAFARI_IPHONE,
            link="https://example.com/pricing?a=1&b=<2>",
        )
        page = (await console.get(f"/console/servers/{server.id}/messages/{message_id}")).text
        timeline = page[page.index('<ol class="timeline">') : page.index("</ol>")]
        opened = timeline[timeline.index("<strong>Opened</strong>") : timeline.index("<strong>Clicked</strong>")]
        assert "reader@example.net" in opened
        assert "Client: Chrome 120.0" in opened
        assert "OS: Windows 10" in opened
        assert "Platform: Desktop" in opened
        clicked = timeline[timeline.index("<strong>Clicked</strong>") :]
        assert "Link: https://example.com/pricing?a=1&amp;b=&lt;2&gt;" in clicked
        assert "In: HTML part" in clicked
        assert "Client: Mobile Safari 17.0" in clicked
        assert "OS: iOS 17.0" in clicked
        assert "Platform: Mobile" in clicked
        assert timeline.index("<strong>Queued</strong>") < timeline.index("<strong>Opened</strong>")
        assert timeline.count("<strong>Opened</strong>") == 1  # from its row, not once more from its event

    async def test_unknown_message_is_a_404_page(self, console: Console) -> None:
        server = await sending_server(console.client)
        for message_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
            response = await console.get(f"/console/servers/{server.id}/messages/{message_id}")
            assert response.status_code == 404
            assert "text/html" in response.headers["content-type"]


class TestBounces:
    async def test_reactivate_lifts_the_suppression_as_the_api_does(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        bounce_id = await add_bounce(app, server, email="gone@example.net")
        page = await console.get(f"/console/servers/{server.id}/bounces", type="HardBounce")
        assert "gone@example.net" in page.text
        assert "Reactivate" in page.text
        refused = await console.client.post("/email", json=message(To="gone@example.net"), headers=server.headers)
        assert refused.json()["ErrorCode"] == 406
        response = await console.post(f"/console/servers/{server.id}/bounces/{bounce_id}/activate")
        assert response.headers["location"].endswith("?notice=reactivated")
        bounce = (await console.client.get(f"/bounces/{bounce_id}", headers=server.headers)).json()
        assert bounce["Inactive"] is False
        assert (await console.client.post("/email", json=message(To="gone@example.net"), headers=server.headers)).status_code == 200

    async def test_spam_complaint_cannot_be_reactivated(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        bounce_id = await add_bounce(app, server, email="angry@example.net", bounce_type=BounceType.SPAM_COMPLAINT)
        response = await console.post(f"/console/servers/{server.id}/bounces/{bounce_id}/activate")
        assert response.status_code == 422
        assert "cannot be activated" in response.text

    async def test_filter_by_type(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        await add_bounce(app, server, email="hard@example.net")
        await add_bounce(app, server, email="late@example.net", bounce_type=BounceType.TRANSIENT)
        page = (await console.get(f"/console/servers/{server.id}/bounces", type="Transient")).text
        assert "late@example.net" in page
        assert "hard@example.net" not in page


class TestSuppressions:
    async def test_add_export_and_remove(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/suppressions"
        response = await console.post(url, {"stream": "outbound", "addresses": "a@example.net, b@example.net"})
        assert response.headers["location"].endswith("notice=suppressed")
        page = (await console.get(url)).text
        assert "a@example.net" in page
        assert "b@example.net" in page
        exported = await console.get(f"/console/servers/{server.id}/suppressions.csv", stream="outbound")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert sorted(r["EmailAddress"] for r in rows) == ["a@example.net", "b@example.net"]
        assert {r["SuppressionReason"] for r in rows} == {"ManualSuppression"}
        await console.post(f"{url}/delete", {"stream": "outbound", "email": "a@example.net"})
        dump = (await console.client.get("/message-streams/outbound/suppressions/dump", headers=server.headers)).json()
        assert [s["EmailAddress"] for s in dump["Suppressions"]] == ["b@example.net"]

    async def test_invalid_address_is_reported(self, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.post(f"/console/servers/{server.id}/suppressions", {"stream": "outbound", "addresses": "not-an-address"})
        assert response.status_code == 422
        assert "An invalid email address was provided." in response.text

    async def test_unknown_stream_is_a_404_page(self, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.get(f"/console/servers/{server.id}/suppressions", stream="nope")
        assert response.status_code == 404
        assert "was not found" in response.text


class TestStreams:
    async def test_lists_the_servers_streams(self, console: Console) -> None:
        server = await create_server(console.client)
        page = (await console.get(f"/console/servers/{server.id}/streams")).text
        for name in ("Default Transactional Stream", "Default Inbound Stream", "Default Broadcast Stream"):
            assert name in page

    async def test_create_edit_archive_and_unarchive_as_the_api_sees_them(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/streams"
        added = await console.post(
            url, {"id": "newsletter", "name": "Newsletter", "type": "Broadcasts", "description": "Monthly", "handling": "Custom"}
        )
        assert added.status_code == 303
        assert added.headers["location"] == f"{url}/newsletter?notice=stream-added"
        api = (await console.client.get("/message-streams/newsletter", headers=server.headers)).json()
        assert (api["Name"], api["MessageStreamType"], api["Description"]) == ("Newsletter", "Broadcasts", "Monthly")
        assert api["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"] == "Custom"

        await console.post(f"{url}/newsletter", {"name": "News", "description": "Weekly", "handling": "Postmark"})
        api = (await console.client.get("/message-streams/newsletter", headers=server.headers)).json()
        assert (api["Name"], api["Description"]) == ("News", "Weekly")
        assert api["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"] == "Postmark"

        archived = await console.post(f"{url}/newsletter/archive")
        assert archived.headers["location"].endswith("notice=stream-archived")
        api = (await console.client.get("/message-streams/newsletter", headers=server.headers)).json()
        purge = api["ExpectedPurgeDate"]
        assert purge
        page = (await console.get(f"{url}/newsletter")).text
        assert "Purge date" in page
        assert purge[:10] in page
        assert "Unarchive" in page
        listed = (await console.get(url)).text
        assert "Archived" in listed
        assert f"purge date {purge[:10]}" in listed
        refused = await console.client.post("/email", json=message(MessageStream="newsletter"), headers=server.headers)
        assert refused.status_code == 422

        await console.post(f"{url}/newsletter/unarchive")
        assert (await console.client.get("/message-streams/newsletter", headers=server.headers)).json()["ArchivedAt"] is None

    async def test_refusals_are_explained_and_change_nothing(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/streams"
        taken = await console.post(url, {"id": "outbound", "name": "Again", "type": "Transactional"})
        assert taken.status_code == 422
        assert "The &#39;ID&#39; provided already exists for this server." in taken.text
        assert 'value="Again"' in taken.text
        bad = await console.post(url, {"id": "Not An Id", "name": "X", "type": "Transactional"})
        assert bad.status_code == 422
        assert "must start with a letter" in bad.text
        edit = await console.post(f"{url}/outbound", {"name": "", "description": ""})
        assert edit.status_code == 422
        assert "A valid &#39;Name&#39; must be provided." in edit.text
        assert (await console.client.get("/message-streams/outbound", headers=server.headers)).json()[
            "Name"
        ] == "Default Transactional Stream"
        default = await console.post(f"{url}/outbound/archive")
        assert default.status_code == 422
        assert "You cannot archive the default transactional and inbound streams." in default.text
        assert (await console.client.get("/message-streams/outbound", headers=server.headers)).json()["ArchivedAt"] is None

    async def test_unknown_stream_is_a_404_page_and_forms_need_the_csrf_token(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/streams"
        assert (await console.get(f"{url}/nope")).status_code == 404
        assert (await console.post(f"{url}/nope", {"name": "x"})).status_code == 404
        forged = await console.client.post(f"{url}/broadcast/archive")
        assert forged.status_code == 403
        assert (await console.client.get("/message-streams/broadcast", headers=server.headers)).json()["ArchivedAt"] is None


class TestWebhooks:
    async def test_add_edit_test_event_and_its_delivery_status(self, app: FastAPI, console: Console) -> None:
        server = await create_server(console.client)
        added = await console.post(
            f"/console/servers/{server.id}/webhooks",
            {"stream": "outbound", "url": "https://hooks.example/pg", "trigger_Bounce": "on", "headers": "X-Team: mail"},
        )
        assert added.status_code == 303
        hook_url = added.headers["location"].split("?")[0]
        [hook] = (await console.client.get("/webhooks", headers=server.headers)).json()["Webhooks"]
        assert hook["Triggers"]["Bounce"]["Enabled"] is True
        assert hook["Triggers"]["Delivery"]["Enabled"] is False
        assert hook["HttpHeaders"] == [{"Name": "X-Team", "Value": "mail"}]
        await console.post(hook_url, {"url": "https://hooks.example/v2", "trigger_Delivery": "on"})
        hook = (await console.client.get(f"/webhooks/{hook['ID']}", headers=server.headers)).json()
        assert hook["Url"] == "https://hooks.example/v2"
        assert hook["Triggers"]["Delivery"]["Enabled"] is True
        assert hook["Triggers"]["Bounce"]["Enabled"] is False
        queued = await console.post(f"{hook_url}/test", {"trigger": "Delivery"})
        assert queued.headers["location"].endswith("notice=test-queued")
        assert "Pending" in (await console.get(hook_url)).text

        posted: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            posted.append(request)
            return httpx.Response(202)

        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            assert await send_due(sessionmaker=app.state.sessionmaker, client=http, retry_schedule=[0.0]) == 1
        assert posted[0].url == "https://hooks.example/v2"
        assert b'"RecordType":"Delivery"' in posted[0].content
        page = (await console.get(hook_url)).text
        assert "Delivered" in page
        assert ">202<" in page

    async def test_invalid_url_is_explained_and_nothing_is_stored(self, app: FastAPI, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.post(f"/console/servers/{server.id}/webhooks", {"stream": "outbound", "url": "ftp://nope"})
        assert response.status_code == 422
        assert "The webhook Url is missing or invalid." in response.text
        assert 'value="ftp://nope"' in response.text
        assert (await console.client.get("/webhooks", headers=server.headers)).json()["Webhooks"] == []

    async def test_rotate_the_key_and_replay_a_delivery_and_a_range(self, app: FastAPI, console: Console) -> None:
        server = await create_server(console.client)
        hook = (await console.client.post("/webhooks", json={"Url": "https://hooks.example/r"}, headers=server.headers)).json()
        hook_url = f"/console/servers/{server.id}/webhooks/{hook['ID']}"
        assert "the server's WebhookSecret" in (await console.get(hook_url)).text
        rotated = await console.post(f"{hook_url}/secret", {"overlap": "3600"})
        assert rotated.status_code == 200
        [secret] = re.findall(r'id="new-webhook-secret">([^<]+)<', rotated.text)
        page = (await console.get(hook_url)).text
        assert secret not in page  # shown once
        assert "this webhook's own key" in page
        assert (await console.post(f"{hook_url}/secret", {"overlap": "99"})).status_code == 422

        await console.post(f"{hook_url}/test", {"trigger": "Delivery"})
        posted: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            posted.append(request)
            return httpx.Response(200)

        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            assert await send_due(sessionmaker=app.state.sessionmaker, client=http, retry_schedule=[0.0]) == 1
            assert posted[0].headers["X-Postgate-Signature"].count("v1=") == 2  # new and old key during the overlap
            [delivery_id] = re.findall(r'name="delivery_id" value="(\d+)"', (await console.get(hook_url)).text)
            one = await console.post(f"{hook_url}/replay", {"delivery_id": delivery_id})
            assert one.headers["location"].endswith("notice=replay-queued")
            assert await send_due(sessionmaker=app.state.sessionmaker, client=http, retry_schedule=[0.0]) == 1
            assert posted[1].content == posted[0].content
            assert posted[1].headers["X-Postgate-Replay-Of"] == f"pg-{delivery_id}"
            ranged = await console.post(f"{hook_url}/replay", {"from": "2000-01-01T00:00", "to": "2000-01-02T00:00"})
            assert ranged.status_code == 303  # an empty range replays nothing, which is not an error
            wrong = await console.post(f"{hook_url}/replay", {"from": "2026-01-02T00:00", "to": "2026-01-01T00:00"})
            assert wrong.status_code == 422
            assert "&#39;From&#39; must be before &#39;To&#39;" in wrong.text

    async def test_delete(self, app: FastAPI, console: Console) -> None:
        server = await create_server(console.client)
        hook = (await console.client.post("/webhooks", json={"Url": "https://hooks.example/x"}, headers=server.headers)).json()
        await console.post(f"/console/servers/{server.id}/webhooks/{hook['ID']}/delete")
        assert (await console.client.get("/webhooks", headers=server.headers)).json()["Webhooks"] == []
        async with app.state.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(WebhookDelivery))).scalar_one() == 0


class TestSettings:
    async def test_smtp_toggle_and_connection_card(self, console: Console, settings: Settings) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/settings"
        await console.post(f"{url}/smtp", {"enabled": "true"})
        assert (await console.client.get("/server", headers=server.headers)).json()["SmtpApiActivated"] is True
        page = (await console.get(url)).text
        assert "Turn SMTP off" in page
        card = page[page.index('aria-label="SMTP connection instructions"') :]
        assert f"<code>{settings.smtp_host}</code>" in card
        assert f"<code>{settings.smtp_port}</code>" in card
        assert f"…{server.token[-4:]}" in card
        assert "PLAIN, LOGIN, CRAM-MD5" in card
        await console.post(f"{url}/smtp", {"enabled": "false"})
        assert (await console.client.get("/server", headers=server.headers)).json()["SmtpApiActivated"] is False

    async def test_tracking_and_hooks(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/settings"
        await console.post(f"{url}/tracking", {"track_opens": "on", "track_links": "HtmlOnly"})
        await console.post(f"{url}/hooks", {"BounceHookUrl": "https://hooks.example/bounce", "EnableSmtpApiErrorHooks": "on"})
        api = (await console.client.get("/server", headers=server.headers)).json()
        assert (api["TrackOpens"], api["TrackLinks"]) == (True, "HtmlOnly")
        assert api["BounceHookUrl"] == "https://hooks.example/bounce"
        assert api["EnableSmtpApiErrorHooks"] is True

    async def test_invalid_hook_url_is_explained_and_nothing_changes(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/settings"
        response = await console.post(f"{url}/hooks", {"BounceHookUrl": "https://ok.example/", "DeliveryHookUrl": "javascript:alert(1)"})
        assert response.status_code == 422
        assert "The DeliveryHookUrl is not a valid http or https URL." in response.text
        assert (await console.client.get("/server", headers=server.headers)).json()["BounceHookUrl"] == ""

    async def test_unknown_settings_card_is_a_404_page(self, console: Console) -> None:
        server = await create_server(console.client)
        assert (await console.post(f"/console/servers/{server.id}/settings/nope")).status_code == 404


class TestStats:
    async def test_chart_counts_sends_bounces_opens_and_clicks_of_today_as_the_stats_api(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        sent = [await send(console.client, server, To="reader@example.net") for _ in range(3)]
        await add_bounce(app, server, email="x@example.net")
        await track(app, console.client, server, sent[0], recipient="reader@example.net", user_agent=CHROME_WINDOWS)
        await track(app, console.client, server, sent[0], recipient="reader@example.net", user_agent=CHROME_WINDOWS)
        await track(app, console.client, server, sent[1], recipient="reader@example.net", user_agent=SAFARI_IPHONE)
        await track(
            app, console.client, server, sent[1], recipient="reader@example.net", user_agent=SAFARI_IPHONE, link="https://example.com/a"
        )
        page = (await console.get(f"/console/servers/{server.id}/stats", days="7")).text
        bars = re.findall(r'<rect class="bar series-(\w+)"[^>]*data-value="(\d+)"', page)
        assert len(bars) == 28
        assert bars[-4:] == [("sends", "3"), ("bounces", "1"), ("opens", "3"), ("clicks", "1")]
        assert "Bounce rate 33.3%" in page
        overview = (await console.client.get("/stats/outbound", headers=server.headers)).json()
        assert (overview["Sent"], overview["Bounced"], overview["Opens"], overview["UniqueOpens"]) == (3, 1, 3, 2)
        assert "unique · 3 in all" in page
        platforms = page[page.index("<h2>Opens by platform</h2>") : page.index("<h2>Opens by email client</h2>")]
        assert re.search(r"<td>Desktop</td><td class=\"num\">2</td><td class=\"num muted\">67%</td>", platforms)
        assert re.search(r"<td>Mobile</td><td class=\"num\">1</td>", platforms)
        clients = page[page.index("<h2>Opens by email client</h2>") : page.index("<h2>Clicks by platform</h2>")]
        assert "<td>Chrome</td>" in clients
        assert "<td>Mobile Safari</td>" in clients

    async def test_people_by_default_and_a_toggle_for_machines(self, app: FastAPI, console: Console) -> None:
        server = await sending_server(console.client)
        sent = await send(console.client, server, To="reader@example.net")
        await track(app, console.client, server, sent, recipient="reader@example.net", user_agent="Mozilla/5.0")  # Apple MPP
        await track(app, console.client, server, sent, recipient="reader@example.net", user_agent=CHROME_WINDOWS)
        url = f"/console/servers/{server.id}/stats"
        people = (await console.get(url, days="7")).text
        assert "unique · 1 in all · 1 by machines, not counted" in people
        everything = (await console.get(url, days="7", machines="1")).text
        assert "unique · 2 in all · 1 by machines<" in everything
        assert 'href="?days=7&machines=1" aria-current="page"' in everything

    async def test_without_activity_the_tables_say_so_and_an_unknown_span_is_thirty_days(self, console: Console) -> None:
        server = await create_server(console.client)
        page = (await console.get(f"/console/servers/{server.id}/stats", days="13")).text
        assert len(re.findall(r'<rect class="bar', page)) == 30 * 4
        assert page.count("None yet") == 3


class TestDomainsAndSenders:
    async def test_domain_records_with_copy_buttons_and_dkim_verification(self, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
        added = await console.post("/console/domains", {"name": "Example.org"})
        page_url = added.headers["location"]
        page = (await console.get(page_url)).text
        host = re.search(r'data-copy="([^"]+\._domainkey\.example\.org)"', page)
        value = re.search(r'data-copy="(k=rsa;p=[^"]+)"', page)
        assert host
        assert value

        async def published(self: ResolverLookup, name: str) -> list[str]:
            return [value.group(1)] if name == host.group(1) else []

        monkeypatch.setattr(ResolverLookup, "txt", published)
        verified = await console.post(f"{page_url}/verify-dkim")
        assert verified.headers["location"].endswith("notice=dkim-verified")
        assert "Verified" in (await console.get("/console/domains")).text

    async def test_duplicate_domain_is_explained(self, console: Console) -> None:
        await console.post("/console/domains", {"name": "example.org"})
        response = await console.post("/console/domains", {"name": "example.org"})
        assert response.status_code == 422
        assert "This domain already exists." in response.text

    async def test_sender_signatures(self, console: Console) -> None:
        await console.post("/console/senders", {"email": "hello@example.com", "name": "Hello"})
        page = (await console.get("/console/senders")).text
        assert "hello@example.com" in page
        [signature] = (await console.client.get("/senders?count=10&offset=0", headers=ACCOUNT)).json()["SenderSignatures"]
        refused = await console.post("/console/senders", {"email": "hello@example.com", "name": "Again"})
        assert refused.status_code == 422
        await console.post(f"/console/senders/{signature['ID']}/delete")
        assert (await console.client.get("/senders?count=10&offset=0", headers=ACCOUNT)).json()["TotalCount"] == 0


class TestDelivery:
    async def test_delivery_page_shows_each_destination_with_its_learned_limits(self, app: FastAPI, console: Console) -> None:
        assert "Nothing delivered yet." in (await console.get("/console/delivery")).text
        async with app.state.sessionmaker() as session, session.begin():
            session.add(
                DeliveryDestination(
                    key="google", connections=4, rate_factor=0.5, delivered=12, throttled=3, last_reply="421 4.7.28 slow down"
                )
            )
        page = (await console.get("/console/delivery")).text
        assert "google" in page
        assert "4 of 10" in page  # learned, of the built-in cap
        assert "421 4.7.28 slow down" in page
        assert "throttled" in page


class TestErrorsAndHeaders:
    async def test_every_page_sends_the_security_headers(self, console: Console) -> None:
        server = await sending_server(console.client)
        message_id = await send(console.client, server)
        pages = [
            f"/console/servers/{server.id}/{p}"
            for p in (
                "activity",
                "bounces",
                "suppressions",
                "templates",
                "templates/new",
                "streams",
                "streams/outbound",
                "webhooks",
                "settings",
                "stats",
            )
        ]
        pages += ["/console/servers", "/console/domains", "/console/senders", "/console/delivery", "/console/sign-in", "/console/nope"]
        pages += [f"/console/servers/{server.id}/messages/{message_id}"]
        for path in pages:
            response = await console.get(path)
            assert response.status_code in (200, 303, 404), path
            for header in SECURITY_HEADERS:
                assert header in response.headers, (path, header)
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp
            assert "script-src 'self';" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["x-frame-options"] == "DENY"

    async def test_unknown_console_path_is_an_html_404_and_the_api_keeps_json(self, console: Console) -> None:
        response = await console.get("/console/no/such/page")
        assert response.status_code == 404
        assert "There is no such page in the console." in response.text
        api = await console.client.get("/no/such/page")
        assert api.json()["ErrorCode"] == 404
        assert (await console.get("/console/")).headers["location"] == "/console/servers"

    async def test_unexpected_error_is_a_readable_500_without_a_traceback(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        from api_service.servers import repository as servers_repository

        async def broken(**kwargs: object) -> None:
            raise RuntimeError("database on fire")

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://postgate.test"
        ) as client:
            await signed_in_console(client)
            monkeypatch.setattr(servers_repository, "list_servers", broken)
            response = await client.get("/console/servers")
        assert response.status_code == 500
        assert "text/html" in response.headers["content-type"]
        assert "The error is logged with the ID" in response.text
        assert "database on fire" not in response.text
        assert "Traceback" not in response.text

    async def test_docs_pages_load_only_local_assets(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/redoc")).status_code == 404  # not served: ReDoc fetches its logo from a CDN
        for path in ("/docs",):
            response = await client.get(path)
            assert response.status_code == 200
            assert "cdn." not in response.text
            assert "fonts.googleapis" not in response.text
            sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
            assert sources
            assert all(s.startswith("/docs-static/") for s in sources), sources
            csp = response.headers["content-security-policy"]
            assert csp.startswith("default-src 'self'")
            assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert (await client.get(f"/docs-static/{asset}")).status_code == 200
