"""The console's inbound pages over the in-process app: received mail (search, a message's parsed
fields, its hook attempts, Bypass and Retry), inbound rules and the Inbound settings card, each
change seen through the API."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from markupsafe import escape
from sqlalchemy import func, update

from api_service.config import Settings
from api_service.console.rendering import format_size
from api_service.models import WebhookDelivery
from api_service.webhooks.tasks import send_due
from api_service.worker import OUTCOME_HANDLERS
from tests.api.inbound.conftest import fixture, inbound_address, received, simple
from tests.console.conftest import Console
from tests.factories import ServerHandle, create_server

pytestmark = pytest.mark.asyncio

HOOK = "https://hooks.example/inbound"


async def post_hooks(app: FastAPI, answer: Callable[[httpx.Request], httpx.Response]) -> int:
    """One pass of the worker's webhook step, the hook answered by `answer`."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        return await send_due(sessionmaker=app.state.sessionmaker, client=http, retry_schedule=[0.0], outcome_handlers=OUTCOME_HANDLERS)


def answering(status: int) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status)


async def api_status(client: httpx.AsyncClient, server: ServerHandle, message_id: str) -> str:
    response = await client.get(f"/messages/inbound/{message_id}/details", headers=server.headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["Status"]
    return status


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end, page.index(start))]


class TestInboundList:
    async def test_search_by_sender_recipient_subject_mailbox_hash_tag_and_status(self, console: Console) -> None:
        server = await create_server(console.client)
        await received(
            console.client,
            simple(sender="Ann <ann@example.com>", subject="Ticket 42 reply"),
            await inbound_address(console.client, server, "ticket42"),
        )
        await console.client.post("/triggers/inboundrules", json={"Rule": "spam.example"}, headers=server.headers)
        await received(
            console.client,
            simple(sender="Bob <bob@spam.example>", subject="Cheap pills"),
            await inbound_address(console.client, server),
            mail_from="bob@spam.example",
        )
        url = f"/console/servers/{server.id}/inbound"
        everything = (await console.get(url)).text
        assert "Ticket 42 reply" in everything
        assert "Cheap pills" in everything
        for query, shown, hidden in (
            ({"fromemail": "ann@"}, "Ticket 42 reply", "Cheap pills"),
            ({"recipient": "+ticket42@"}, "Ticket 42 reply", "Cheap pills"),
            ({"subject": "pills"}, "Cheap pills", "Ticket 42 reply"),
            ({"mailboxhash": "ticket42"}, "Ticket 42 reply", "Cheap pills"),
            ({"status": "Blocked"}, "Cheap pills", "Ticket 42 reply"),
            ({"status": "processed"}, "Ticket 42 reply", "Cheap pills"),
        ):
            page = (await console.get(url, **query)).text
            assert shown in page, query
            assert hidden not in page, query
        assert "No received messages match" in (await console.get(url, tag="billing")).text
        assert "No received messages match" in (await console.get(url, fromdate="2001-01-01", todate="2001-01-02")).text
        assert 'badge-blocked">Blocked<' in everything
        assert f"{(await console.client.get('/server', headers=server.headers)).json()['InboundAddress']}</code>" in everything

    async def test_paging_and_the_live_first_page(self, console: Console) -> None:
        server = await create_server(console.client)
        address = await inbound_address(console.client, server)
        for i in range(26):
            await received(console.client, simple(subject=f"Number {i:02d}"), address)
        first = (await console.get(f"/console/servers/{server.id}/inbound")).text
        second = (await console.get(f"/console/servers/{server.id}/inbound", page="2")).text
        assert "Page 1 of 2" in first
        assert "Number 25" in first
        assert "Number 00" not in first
        assert "Number 00" in second
        assert 'hx-trigger="every 5s"' in first
        assert 'hx-trigger="every 5s"' not in second

    async def test_rows_partial_is_the_table_body_with_the_search(self, console: Console) -> None:
        server = await create_server(console.client)
        await received(console.client, simple(subject="Live one"), await inbound_address(console.client, server))
        rows = await console.get(f"/console/servers/{server.id}/inbound/rows", subject="Live")
        assert rows.text.startswith('<tbody id="inbound-rows"')
        assert "Live one" in rows.text
        assert "subject=Live" in rows.text

    async def test_bad_date_is_explained_not_a_500(self, console: Console) -> None:
        server = await create_server(console.client)
        response = await console.get(f"/console/servers/{server.id}/inbound", fromdate="yesterday")
        assert response.status_code == 422
        assert "is not a valid date" in response.text


class TestInboundMessage:
    async def test_parsed_fields_attachments_headers_and_html_in_the_sandboxed_frame(self, console: Console) -> None:
        server = await create_server(console.client)
        address = await inbound_address(console.client, server, "ticket42")
        [message_id] = await received(console.client, fixture("gmail_reply.eml"), address)
        [invoice_id] = await received(console.client, fixture("inline_image_and_pdf.eml"), address)
        api = (await console.client.get(f"/messages/inbound/{message_id}/details", headers=server.headers)).json()

        page = (await console.get(f"/console/servers/{server.id}/inbound/{message_id}")).text
        facts = section(page, "<h2>Details</h2>", "</dl>")
        assert f"{api['FromName']} &lt;{api['From']}&gt;" in facts
        assert "ticket42" in facts
        assert address in facts
        stripped = re.search(r'<pre class="body-text" id="stripped-reply">(.*?)</pre>', page, re.S)
        assert stripped
        assert stripped.group(1) == escape(api["StrippedTextReply"])
        assert "wrote:" in section(page, 'id="text-body"', "</pre>")
        headers = section(page, "<h2>Headers</h2>", "</table>")
        for header in api["Headers"]:
            assert f">{header['Name']}</th>" in headers

        invoice = (await console.get(f"/console/servers/{server.id}/inbound/{invoice_id}")).text
        attachments = section(invoice, "<h2>Attachments</h2>", "</table>")
        assert re.search(r"logo\.png</td>\s*<td class=\"mono\">image/png</td>", attachments)
        assert re.search(r"Invoice-2025-0042\.pdf</td>\s*<td class=\"mono\">application/pdf</td>", attachments)
        pdf_size = (await console.client.get(f"/messages/inbound/{invoice_id}/details", headers=server.headers)).json()["Attachments"][1][
            "ContentLength"
        ]
        assert f'<td class="num nowrap">{format_size(pdf_size)}</td>' in attachments
        assert re.search(r'<iframe class="preview" sandbox title=', invoice)
        assert f'src="/console/servers/{server.id}/inbound/{invoice_id}/html"' in invoice
        frame = await console.get(f"/console/servers/{server.id}/inbound/{invoice_id}/html")
        assert "please find invoice 2025-0042 attached" in frame.text
        csp = frame.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "sandbox" in csp
        assert "script-src" not in csp
        assert frame.headers["x-frame-options"] == "SAMEORIGIN"
        raw = await console.get(f"/console/servers/{server.id}/inbound/{invoice_id}/raw")
        assert raw.headers["content-type"] == "message/rfc822"
        assert raw.content.startswith(b"Received: from smtp.acme.example")

    async def test_script_in_the_message_is_escaped_on_the_page_and_framed_without_scripts(self, console: Console) -> None:
        server = await create_server(console.client)
        hostile = (
            b"From: <script>alert(1)</script> <ann@example.com>\r\nTo: x@example.net\r\nSubject: <script>alert(2)</script>\r\n"
            b'X-Evil: <img src=x onerror="alert(3)">\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\n</pre><script>alert(4)</script>\r\n"
            b'--b\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><script>alert(5)</script><img src="https://tracker.example/p.gif">\r\n--b--\r\n'
        )
        [message_id] = await received(console.client, hostile, await inbound_address(console.client, server))
        page = await console.get(f"/console/servers/{server.id}/inbound/{message_id}")
        assert page.status_code == 200
        assert "<script" not in page.text.split("</head>", 1)[1]
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text
        assert "&lt;/pre&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in page.text
        assert 'onerror="alert(3)"' not in page.text
        assert "Load images" in page.text
        assert "/html?images=1" not in page.text
        frame = await console.get(f"/console/servers/{server.id}/inbound/{message_id}/html")
        assert "<script>alert(5)</script>" in frame.text  # served as written, to a frame where nothing runs
        assert "script-src" not in frame.headers["content-security-policy"]
        assert "https:" not in frame.headers["content-security-policy"]
        loaded = await console.get(f"/console/servers/{server.id}/inbound/{message_id}/html", images="1")
        assert "img-src data: cid: http: https:" in loaded.headers["content-security-policy"]

    async def test_hook_attempts_with_their_http_status_then_retry_of_a_failed_message(self, app: FastAPI, console: Console) -> None:
        server = await create_server(console.client, InboundHookUrl=HOOK)
        [message_id] = await received(console.client, simple(subject="Ticket"), await inbound_address(console.client, server))
        url = f"/console/servers/{server.id}/inbound/{message_id}"
        queued = (await console.get(url)).text
        assert 'badge-queued">Queued<' in queued
        assert 'badge-pending">Pending<' in section(queued, 'id="hook"', "</table>")
        assert "Retry</button>" not in queued

        assert await post_hooks(app, answering(500)) == 1
        scheduled = (await console.get(url)).text
        assert 'badge-scheduled">Scheduled<' in scheduled
        assert re.search(r'<td class="mono">500</td>\s*<td>1</td>', section(scheduled, 'id="hook"', "</table>"))

        # The next attempt is due in a minute (the inbound schedule): make it due now, and fail for good with a 403.
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(WebhookDelivery).values(next_attempt_at=func.now()))
        assert await post_hooks(app, answering(403)) == 1
        failed = (await console.get(url)).text
        assert 'badge-failed">Failed<' in failed
        assert re.search(r'<td class="mono">403</td>\s*<td>2</td>', section(failed, 'id="hook"', "</table>"))
        assert "Retry</button>" in failed
        assert await api_status(console.client, server, message_id) == "Failed"

        assert (await console.client.post(f"{url}/retry")).status_code == 403  # no CSRF token
        assert await api_status(console.client, server, message_id) == "Failed"
        retried = await console.post(f"{url}/retry")
        assert retried.headers["location"] == f"{url}?notice=inbound-retried"
        assert await api_status(console.client, server, message_id) == "Queued"
        page = (await console.get(retried.headers["location"])).text
        assert "queued for the InboundHookUrl again" in page
        attempts = section(page, 'id="hook"', "</table>")
        assert attempts.count("<tr>") == 3  # the header, the new POST, the failed one
        assert attempts.index("Pending") < attempts.index("Failed")  # newest first

        assert await post_hooks(app, answering(200)) == 1
        done = (await console.get(url)).text
        assert 'badge-processed">Processed<' in done
        assert re.search(r'badge-delivered">Delivered</span></td>\s*<td class="mono">200</td>', done)

    async def test_bypass_posts_a_blocked_message_as_the_api_does(self, console: Console) -> None:
        server = await create_server(console.client, InboundHookUrl=HOOK)
        await console.client.post("/triggers/inboundrules", json={"Rule": "ann@example.com"}, headers=server.headers)
        [message_id] = await received(console.client, simple(), await inbound_address(console.client, server))
        url = f"/console/servers/{server.id}/inbound/{message_id}"
        page = (await console.get(url)).text
        assert "Blocked by the inbound rule &#39;ann@example.com&#39;." in page
        assert "Not posted: the message is blocked." in page
        assert "Bypass</button>" in page
        assert (await console.client.post(f"{url}/bypass", data={"csrf_token": "forged"})).status_code == 403
        assert await api_status(console.client, server, message_id) == "Blocked"
        bypassed = await console.post(f"{url}/bypass")
        assert bypassed.headers["location"] == f"{url}?notice=inbound-bypassed"
        assert await api_status(console.client, server, message_id) == "Queued"
        after = (await console.get(bypassed.headers["location"])).text
        assert "bypassed the inbound rules" in after
        assert "Bypass</button>" not in after
        assert 'badge-pending">Pending<' in after

    async def test_bypass_without_a_hook_url_processes_the_message(self, console: Console) -> None:
        server = await create_server(console.client)
        await console.client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)
        [message_id] = await received(console.client, simple(), await inbound_address(console.client, server))
        bypassed = await console.post(f"/console/servers/{server.id}/inbound/{message_id}/bypass")
        assert bypassed.headers["location"].endswith("?notice=inbound-bypassed-processed")
        assert await api_status(console.client, server, message_id) == "Processed"

    async def test_bypass_or_retry_of_a_message_in_another_status_is_explained_and_changes_nothing(self, console: Console) -> None:
        server = await create_server(console.client)
        [message_id] = await received(console.client, simple(), await inbound_address(console.client, server))
        url = f"/console/servers/{server.id}/inbound/{message_id}"
        bypass = await console.post(f"{url}/bypass")
        assert bypass.status_code == 422
        assert "only blocked messages can bypass the rules" in bypass.text
        retry = await console.post(f"{url}/retry")
        assert retry.status_code == 422
        assert "only failed messages can be retried" in retry.text
        assert await api_status(console.client, server, message_id) == "Processed"

    async def test_unknown_or_foreign_message_is_a_404_page(self, console: Console) -> None:
        server = await create_server(console.client)
        other = await create_server(console.client, "Other")
        [message_id] = await received(console.client, simple(), await inbound_address(console.client, other))
        for path in (
            f"inbound/{message_id}",
            "inbound/not-a-uuid",
            "inbound/00000000-0000-0000-0000-000000000000",
            f"inbound/{message_id}/html",
        ):
            response = await console.get(f"/console/servers/{server.id}/{path}")
            assert response.status_code == 404, path
            assert "text/html" in response.headers["content-type"]
        assert (await console.post(f"/console/servers/{server.id}/inbound/{message_id}/bypass")).status_code == 404


class TestInboundRules:
    async def test_add_an_address_and_a_domain_then_delete_as_the_api_sees_it(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/inbound-rules"
        assert "No rules" in (await console.get(url)).text
        added = await console.post(url, {"rule": " Spammer@Example.com "})
        assert added.headers["location"] == f"{url}?notice=rule-added"
        await console.post(url, {"rule": "junk.example"})
        page = (await console.get(url)).text
        assert "spammer@example.com" in page
        assert "Every address at junk.example and its subdomains" in page
        rules = (await console.client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["InboundRules"]
        assert [r["Rule"] for r in rules] == ["spammer@example.com", "junk.example"]
        [blocked] = await received(
            console.client,
            simple(sender="x@mail.junk.example"),
            await inbound_address(console.client, server),
            mail_from="x@mail.junk.example",
        )
        assert await api_status(console.client, server, blocked) == "Blocked"

        deleted = await console.post(f"{url}/{rules[1]['ID']}/delete")
        assert deleted.headers["location"] == f"{url}?notice=rule-deleted"
        rules = (await console.client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["InboundRules"]
        assert [r["Rule"] for r in rules] == ["spammer@example.com"]

    async def test_invalid_and_duplicate_rules_are_explained_and_nothing_is_stored(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/inbound-rules"
        invalid = await console.post(url, {"rule": "not a rule"})
        assert invalid.status_code == 422
        assert "is not a valid email address or domain." in invalid.text
        assert 'value="not a rule"' in invalid.text
        empty = await console.post(url, {"rule": ""})
        assert empty.status_code == 422
        assert "The Rule is required" in empty.text
        await console.post(url, {"rule": "example.com"})
        duplicate = await console.post(url, {"rule": "EXAMPLE.com"})
        assert duplicate.status_code == 422
        assert "The inbound rule &#39;example.com&#39; already exists." in duplicate.text
        assert (await console.client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 1

    async def test_forms_need_the_csrf_token_and_an_unknown_rule_is_a_404_page(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/inbound-rules"
        assert (await console.client.post(url, data={"rule": "example.com"})).status_code == 403
        rule = (await console.client.post("/triggers/inboundrules", json={"Rule": "example.com"}, headers=server.headers)).json()
        assert (await console.client.post(f"{url}/{rule['ID']}/delete")).status_code == 403
        assert (await console.client.get("/triggers/inboundrules?count=10&offset=0", headers=server.headers)).json()["TotalCount"] == 1
        missing = await console.post(f"{url}/999999/delete")
        assert missing.status_code == 404
        assert "Inbound rule 999999 was not found." in missing.text


class TestInboundSettings:
    async def test_card_shows_the_inbound_address_and_the_mx_record_with_copy_buttons(self, console: Console, settings: Settings) -> None:
        server = await create_server(console.client)
        address = (await console.client.get("/server", headers=server.headers)).json()["InboundAddress"]
        page = (await console.get(f"/console/servers/{server.id}/settings")).text
        card = section(page, '<section class="card" id="inbound">', "</section>")
        assert f'<code id="inbound-address">{address}</code>' in card
        assert f'data-copy="{address}"' in card
        # The test settings put the listener on 127.0.0.1: an MX names a host, so the card names
        # mx.<INBOUND_DOMAIN> with an A record, and says other mail servers cannot reach it.
        assert f'data-copy="{settings.inbound_domain}"' in card
        assert f'data-copy="mx.{settings.inbound_domain}"' in card
        assert 'data-copy="127.0.0.1"' in card
        assert "which other mail servers cannot reach" in card

    async def test_save_inbound_settings_as_the_api_sees_them(self, console: Console) -> None:
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/settings"
        saved = await console.post(
            f"{url}/inbound",
            {"InboundHookUrl": HOOK, "InboundDomain": "Replies.Example.com", "InboundSpamThreshold": "15", "RawEmailEnabled": "on"},
        )
        assert saved.headers["location"] == f"{url}?notice=saved#inbound"
        api = (await console.client.get("/server", headers=server.headers)).json()
        assert (api["InboundHookUrl"], api["InboundDomain"], api["InboundSpamThreshold"], api["RawEmailEnabled"]) == (
            HOOK,
            "replies.example.com",
            15,
            True,
        )
        card = section((await console.get(url)).text, '<section class="card" id="inbound">', "</section>")
        assert 'data-copy="replies.example.com"' in card
        assert '<option value="15" selected>' in card
        # The hooks card no longer carries the inbound hook, so saving it leaves the inbound hook alone.
        await console.post(f"{url}/hooks", {"BounceHookUrl": "https://hooks.example/bounce"})
        assert (await console.client.get("/server", headers=server.headers)).json()["InboundHookUrl"] == HOOK
        await console.post(f"{url}/inbound", {"InboundHookUrl": "", "InboundDomain": "", "InboundSpamThreshold": "0"})
        api = (await console.client.get("/server", headers=server.headers)).json()
        assert (api["InboundHookUrl"], api["InboundDomain"], api["InboundSpamThreshold"], api["RawEmailEnabled"]) == ("", "", 0, False)

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({"InboundSpamThreshold": "7"}, "InboundSpamThreshold must be between 0 and 30, in steps of 5."),
            ({"InboundSpamThreshold": "lots"}, "InboundSpamThreshold must be a number"),
            ({"InboundHookUrl": "javascript:alert(1)"}, "The InboundHookUrl is not a valid http or https URL."),
            ({"InboundDomain": "taken.example"}, "The inbound domain taken.example is already used by another server."),
        ],
    )
    async def test_refusals_are_explained_in_the_card_and_nothing_changes(
        self, console: Console, form: dict[str, str], message: str
    ) -> None:
        await create_server(console.client, "Owner", InboundDomain="taken.example")
        server = await create_server(console.client)
        url = f"/console/servers/{server.id}/settings"
        response = await console.post(f"{url}/inbound", {"InboundSpamThreshold": "0", "RawEmailEnabled": "on", **form})
        assert response.status_code == 422
        card = section(response.text, '<section class="card" id="inbound">', "</section>")
        assert message in card.replace("&#39;", "'")
        api = (await console.client.get("/server", headers=server.headers)).json()
        assert (api["InboundHookUrl"], api["InboundDomain"], api["InboundSpamThreshold"], api["RawEmailEnabled"]) == ("", "", 0, False)


class TestHeaders:
    async def test_every_inbound_page_sends_the_consoles_policy(self, console: Console) -> None:
        server = await create_server(console.client)
        [message_id] = await received(console.client, simple(), await inbound_address(console.client, server))
        pages = {"inbound": "Inbound", "inbound/rows": None, f"inbound/{message_id}": "Inbound", "inbound-rules": "Inbound rules"}
        for page, current in pages.items():
            response = await console.get(f"/console/servers/{server.id}/{page}")
            assert response.status_code == 200, page
            csp = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp
            assert "script-src 'self';" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["x-frame-options"] == "DENY"
            if current:
                assert f'aria-current="page">{current}</a>' in response.text
