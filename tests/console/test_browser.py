"""The console in a real browser: Debian's Chromium driven by Playwright against the real API on a
loopback port, with data made through the API and a real SMTP sink that refuses `hard…` with 550.

The tests run in order and share one signed-in browser page. Playwright's async API runs on the
suite's event loop (its sync API would hold a running loop that pytest-asyncio cannot share). Screenshots go to
tests/console/screenshots/ (git-ignored); the README's are copies of three of them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import text

from api_service.config import Settings
from api_service.db import create_engine, create_sessionmaker
from api_service.delivery.service import deliver_batch
from api_service.delivery.transport import Transport, parse_relay
from api_service.main import create_app
from api_service.models import Base
from smtp_service.config import SmtpSettings
from smtp_service.server import serve
from tests.api.conftest import SinkHandler
from tests.compat.conftest import free_port
from tests.conftest import ACCOUNT_TOKEN

CHROMIUM = os.environ.get("POSTGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_ENABLE = "the browser tests need Chromium: `apt-get install -y chromium` (or set POSTGATE_CHROMIUM); .ci/run installs it"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SMTP_PUBLIC_HOST = "smtp.postgate.test"

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - playwright is a dev dependency
    async_playwright = None  # type: ignore[assignment]

if async_playwright is None or shutil.which(CHROMIUM) is None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {HOW_TO_ENABLE}", pytrace=False)
    pytest.skip(HOW_TO_ENABLE, allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Stack:
    url: str
    settings: Settings
    sink_port: int
    database_url: str
    state: dict[str, Any] = field(default_factory=dict)

    async def api(self, method: str, path: str, *, server_token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"X-Postmark-Server-Token": server_token} if server_token else {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 200, response.text
        return response

    async def send(self, **fields: Any) -> str:
        body = {"From": "Acme Billing <billing@example.com>", "To": "reader@example.net", "Subject": "Hello", "TextBody": "Hello", **fields}
        message_id: str = (await self.api("POST", "/email", server_token=self.state["token"], json=body)).json()["MessageID"]
        return message_id

    async def deliver(self) -> int:
        """One pass of the delivery worker, against the sink."""
        engine = create_engine(self.database_url, pool_size=2, max_overflow=0)
        relay = f"smtp://127.0.0.1:{self.sink_port}"
        transport = Transport(relay=parse_relay(relay), helo="localhost", timeout=5)
        settings = self.settings.model_copy(update={"outbound_relay": relay, "return_path_domain": "bounces.postgate.test"})
        try:
            return await deliver_batch(sessionmaker=create_sessionmaker(engine), transport=transport, settings=settings)
        finally:
            if transport.pool is not None:
                transport.pool.close()
            await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(settings: Settings, database_url: str) -> AsyncIterator[Stack]:
    sink = Controller(SinkHandler(), hostname="127.0.0.1", port=free_port())
    sink.start()
    live_settings = settings.model_copy(update={"smtp_public_host": SMTP_PUBLIC_HOST})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(live_settings), host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.05)
    try:
        yield Stack(url=f"http://127.0.0.1:{port}", settings=live_settings, sink_port=sink.port, database_url=database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sink.stop()

        engine = create_engine(database_url, pool_size=1, max_overflow=0)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
        await engine.dispose()


@dataclass
class MxListener:
    port: int

    async def mail(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """What another mail server does: connect to the MX listener and hand the message over."""

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as mta:
                mta.ehlo("mx.customer.example")
                assert mta.sendmail(sender, [recipient], message.as_bytes(policy=SMTP)) == {}

        await asyncio.to_thread(send)


@pytest.fixture(scope="module")
def mx(stack: Stack) -> Iterator[MxListener]:
    """The SMTP gateway's MX listener in front of the stack's API, on its own event loop in a thread."""
    settings = SmtpSettings(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_inbound_port=free_port(),
        api_url=stack.url,
        api_timeout_seconds=10,
        account_token=ACCOUNT_TOKEN,
        inbound_domain=stack.settings.inbound_domain,
        return_path_domain=stack.settings.return_path_domain,
        smtp_inbound_cache_seconds=0,
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def started(servers: object) -> None:
        ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve(settings, started=started, stop=stop)), daemon=True)
    thread.start()
    assert ready.wait(10), "the SMTP gateway did not start"
    yield MxListener(port=settings.smtp_inbound_port)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def inbound_mail(*, sender: str, to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class Seen:
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page(browser: Browser, stack: Stack, seen: Seen) -> AsyncIterator[Page]:
    SCREENSHOTS.mkdir(exist_ok=True)
    context: BrowserContext = await browser.new_context(base_url=stack.url, viewport={"width": 1360, "height": 860})
    context.on("request", lambda request: seen.requests.append(request.url))
    tab = await context.new_page()

    async def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        await dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield tab
    await context.close()


@pytest.fixture(autouse=True)
def _nothing_from_other_hosts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test does, the browser loads nothing but Postgate's own URLs."""
    yield
    if "page" in request.fixturenames:
        stack: Stack = request.getfixturevalue("stack")
        seen: Seen = request.getfixturevalue("seen")
        foreign = [u for u in seen.requests if not u.startswith((stack.url + "/", "data:", "blob:", "about:"))]
        assert not foreign, foreign


async def shot(page: Page, name: str, *, selector: str | None = None) -> None:
    path = str(SCREENSHOTS / f"{name}.png")
    await (page.locator(selector).screenshot(path=path) if selector else page.screenshot(path=path))


async def test_sign_in_and_create_a_server(page: Page, stack: Stack) -> None:
    await page.goto("/console")
    await expect(page).to_have_url(f"{stack.url}/console/sign-in?next=%2Fconsole")
    await page.get_by_label("Password or account token").fill(ACCOUNT_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    await page.get_by_label("Name").fill("Acme production")
    await page.get_by_label("Colour").select_option("green")
    await page.get_by_role("button", name="Create server").click()
    await expect(page.get_by_role("heading", name="Acme production is ready")).to_be_visible()
    token = await page.locator("#server-token").inner_text()
    stack.state["token"] = token
    stack.state["server_id"] = (await stack.api("GET", "/server", server_token=token)).json()["ID"]
    await stack.api("POST", "/senders", json={"FromEmail": "billing@example.com", "Name": "Acme Billing"})
    await shot(page, "server-created")


async def test_message_sent_through_the_api_is_found_in_activity_and_opened(page: Page, stack: Stack) -> None:
    for subject, to, tag in (
        ("Welcome to Acme", "new.customer@example.net", "onboarding"),
        ("Reset your password", "forgetful@example.net", "password-reset"),
        ("Your receipt", "hard-bounce@example.net", "billing"),
    ):
        await stack.send(Subject=subject, To=to, Tag=tag)
    invoice = await stack.send(
        Subject="Your invoice #1042",
        To="reader@example.net",
        Tag="billing",
        HtmlBody="<h1 style='color:#4f46e5'>Invoice #1042</h1><p>Thank you for your order.</p>",
        TextBody="Invoice #1042. Thank you for your order.",
    )
    stack.state["invoice"] = invoice
    await page.goto(f"/console/servers/{stack.state['server_id']}/activity")
    await expect(page.get_by_role("link", name="Your invoice #1042")).to_be_visible()
    await shot(page, "activity")
    await page.get_by_label("Recipient").fill("reader@")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="Your invoice #1042")).to_be_visible()
    await expect(page.get_by_role("link", name="Welcome to Acme")).to_have_count(0)
    # The first page refreshes itself (htmx): a new message appears without a reload.
    await stack.send(Subject="Your invoice #1043", To="reader@example.net", Tag="billing")
    await expect(page.get_by_role("link", name="Your invoice #1043")).to_be_visible(timeout=15_000)
    await page.get_by_role("link", name="Your invoice #1042").click()
    await expect(page.get_by_role("heading", name="Your invoice #1042")).to_be_visible()
    await expect(page.locator(".timeline")).to_contain_text("Queued")
    await expect(page.frame_locator("iframe.preview").get_by_role("heading", name="Invoice #1042")).to_be_visible()
    await expect(page.locator("table.compact")).to_contain_text("Message-ID")
    await shot(page, "message")


async def test_script_in_a_message_runs_nowhere(page: Page, stack: Stack, seen: Seen) -> None:
    probe = "/xss-probe"
    message_id = await stack.send(
        Subject="<img src=x onerror=alert('subject')>",
        HtmlBody=(
            "<p id='greeting'>Hello from the attacker</p>"
            f"<script>alert('script'); fetch('{probe}/script'); parent.document.title = 'pwned';</script>"
            f"<img src='x' onerror=\"alert('onerror'); fetch('{probe}/onerror')\">"
            "<svg onload=\"alert('svg')\"></svg>"
            f"<iframe srcdoc=\"<script>alert('nested'); fetch('{probe}/nested')</script>\"></iframe>"
            "<a id='js' href=\"javascript:alert('link')\">click me</a>"
        ),
        TextBody="</pre><script>alert('text')</script>",
    )
    await page.goto(f"/console/servers/{stack.state['server_id']}/activity")
    await expect(page.get_by_role("link", name="<img src=x onerror=alert('subject')>")).to_be_visible()
    await page.goto(f"/console/servers/{stack.state['server_id']}/messages/{message_id}")
    frame = page.frame_locator("iframe.preview")
    await expect(frame.locator("#greeting")).to_have_text("Hello from the attacker")
    await frame.locator("#js").click()
    await page.wait_for_load_state("load")
    await expect(page.locator("pre.body-text")).to_contain_text("<script>alert('text')</script>")
    assert seen.dialogs == []
    assert not [u for u in seen.requests if probe in u]
    assert (await page.title()) != "pwned"
    assert (await page.locator("iframe.preview").get_attribute("sandbox")) == ""
    await shot(page, "script-injection")


async def test_layout_and_template_with_a_live_preview_then_sent_through_the_api(page: Page, stack: Stack) -> None:
    templates = f"/console/servers/{stack.state['server_id']}/templates"
    await page.goto(templates)
    await page.get_by_role("link", name="New layout").click()
    await page.get_by_label("Name", exact=True).fill("Acme frame")
    await page.get_by_label("Alias").fill("acme-frame")
    await page.get_by_label("HTML body").fill("<html><body><p id='brand'>{{ company }}</p>{{{ @content }}}</body></html>")
    await page.get_by_label("Text body").fill("{{ company }}\n{{{ @content }}}")
    await page.get_by_role("button", name="Create layout").click()
    await expect(page.get_by_role("status")).to_have_text("The layout is saved; Standard templates can use it now.")

    await page.goto(templates)
    await page.get_by_role("link", name="New template").click()
    await page.get_by_label("Name", exact=True).fill("Receipt")
    await page.get_by_label("Alias").fill("receipt")
    await page.get_by_label("Subject").fill("Receipt {{ order_id }}")
    await page.get_by_label("Layout").select_option("acme-frame")
    await page.get_by_label("HTML body").fill("<h1>Thanks, {{ name }}</h1>")
    frame = page.frame_locator("iframe[name='template-html']")
    # The live check renders with the suggested model; the frame shows the HTML inside the layout.
    await expect(frame.get_by_role("heading", name="Thanks, name_Value")).to_be_visible()
    await expect(frame.locator("#brand")).to_have_text("company_Value")
    await page.get_by_label("Test model").fill('{"name": "Ann", "company": "Acme", "order_id": "1042"}')
    await expect(frame.get_by_role("heading", name="Thanks, Ann")).to_be_visible()
    await expect(frame.locator("#brand")).to_have_text("Acme")
    panel = page.locator("#template-preview")
    await expect(panel).to_contain_text("Receipt 1042")
    # A syntax error is reported with its place, beside the field and in the panel, while typing.
    await page.get_by_label("HTML body").fill("<h1>Thanks, {{ name }}</h1>\n{{#each items}}")
    await expect(page.locator("#errors-html_body")).to_contain_text("Line 2, character 1:")
    await expect(panel).to_contain_text("Has errors")
    await page.get_by_label("HTML body").fill("<h1>Thanks, {{ name }}</h1>")
    await expect(panel).to_contain_text("Valid")
    await expect(page.locator("#errors-html_body")).to_have_text("")
    await page.get_by_label("Text body").fill("Thanks, {{ name }}.")
    await expect(panel.locator("pre.body-text").first).to_have_text("Acme\nThanks, Ann.")
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "template-editor")
    await page.get_by_role("button", name="Create template").click()
    await expect(page.get_by_role("status")).to_have_text("The template is saved; send with it through /email/withTemplate.")

    sent = await stack.api(
        "POST",
        "/email/withTemplate",
        server_token=stack.state["token"],
        json={
            "From": "Acme Billing <billing@example.com>",
            "To": "reader@example.net",
            "TemplateAlias": "receipt",
            "TemplateModel": {"name": "Ann", "company": "Acme", "order_id": "1042"},
        },
    )
    await page.goto(f"/console/servers/{stack.state['server_id']}/messages/{sent.json()['MessageID']}")
    await expect(page.get_by_role("heading", name="Receipt 1042")).to_be_visible()
    message_frame = page.frame_locator("iframe.preview")
    await expect(message_frame.get_by_role("heading", name="Thanks, Ann")).to_be_visible()
    await expect(message_frame.locator("#brand")).to_have_text("Acme")


async def test_script_in_a_template_runs_nowhere_in_its_preview(page: Page, stack: Stack, seen: Seen) -> None:
    probe = "/xss-probe-template"
    await page.goto(f"/console/servers/{stack.state['server_id']}/templates/new")
    await page.get_by_label("Subject").fill("<img src=x onerror=alert('subject')>{{ name }}")
    await page.get_by_label("HTML body").fill(
        "<p id='greeting'>Hello {{ name }}</p>"
        f"<script>alert('script'); fetch('{probe}/script'); parent.document.title = 'pwned';</script>"
        f"<img src='x' onerror=\"alert('onerror'); fetch('{probe}/onerror')\">"
        "<svg onload=\"alert('svg')\"></svg>"
        f"<iframe srcdoc=\"<script>alert('nested'); fetch('{probe}/nested')</script>\"></iframe>"
        "<a id='js' href=\"javascript:alert('link')\">click me</a>"
        "{{{ raw }}}"
    )
    await page.get_by_label("Test model").fill(
        '{"name": "<script>alert(1)</script>", "raw": "<img src=y onerror=alert(2)><script>alert(3)</script>"}'
    )
    frame = page.frame_locator("iframe[name='template-html']")
    await expect(frame.locator("#greeting")).to_have_text("Hello <script>alert(1)</script>")
    await frame.locator("#js").click()
    await page.wait_for_load_state("load")
    await expect(page.locator("#template-preview")).to_contain_text("<img src=x onerror=alert('subject')><script>alert(1)</script>")
    assert seen.dialogs == []
    assert not [u for u in seen.requests if probe in u]
    assert (await page.title()) != "pwned"
    assert (await page.locator("iframe[name='template-html']").get_attribute("sandbox")) == ""


async def test_hard_bounce_is_reactivated(page: Page, stack: Stack) -> None:
    assert await stack.deliver() >= 5
    await page.goto(f"/console/servers/{stack.state['server_id']}/bounces")
    row = page.get_by_role("row").filter(has_text="hard-bounce@example.net")
    await expect(row).to_contain_text("Hard bounce")
    await expect(row).to_contain_text("Inactive")
    await shot(page, "bounces")
    await row.get_by_role("button", name="Reactivate").click()
    await expect(page.get_by_role("status")).to_have_text("The recipient is active again; mail to it is delivered.")
    [bounce] = (await stack.api("GET", "/bounces?count=10&offset=0", server_token=stack.state["token"])).json()["Bounces"]
    assert bounce["Inactive"] is False
    await page.goto(f"/console/servers/{stack.state['server_id']}/messages/{stack.state['invoice']}")
    await expect(page.locator(".timeline")).to_contain_text("Delivered")


async def test_smtp_is_turned_on_and_the_connection_card_tells_how_to_connect(page: Page, stack: Stack) -> None:
    await page.goto(f"/console/servers/{stack.state['server_id']}/settings")
    await page.get_by_role("button", name="Turn SMTP on").click()
    await expect(page.get_by_role("status")).to_have_text("SMTP is on for this server.")
    card = page.locator("#smtp")
    await expect(card).to_contain_text(SMTP_PUBLIC_HOST)
    await expect(card).to_contain_text(str(stack.settings.smtp_port))
    await expect(card).to_contain_text(f"…{stack.state['token'][-4:]}")
    await expect(card).to_contain_text("PLAIN, LOGIN, CRAM-MD5")
    assert (await stack.api("GET", "/server", server_token=stack.state["token"])).json()["SmtpApiActivated"] is True
    await shot(page, "smtp-settings", selector="#smtp")


async def test_inbound_settings_and_a_rule_are_set_in_the_console(page: Page, stack: Stack) -> None:
    server = await stack.api("GET", "/server", server_token=stack.state["token"])
    stack.state["inbound_address"] = server.json()["InboundAddress"]
    await page.goto(f"/console/servers/{stack.state['server_id']}/settings")
    card = page.locator("#inbound")
    await expect(card).to_contain_text(stack.state["inbound_address"])
    await card.get_by_label("Inbound hook URL").fill("https://app.example/hooks/inbound")
    await card.get_by_label("Spam threshold").select_option("10")
    await card.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator("#inbound .record").first).to_contain_text(stack.settings.inbound_domain)
    saved = (await stack.api("GET", "/server", server_token=stack.state["token"])).json()
    assert (saved["InboundHookUrl"], saved["InboundSpamThreshold"]) == ("https://app.example/hooks/inbound", 10)
    await shot(page, "inbound-settings", selector="#inbound")

    await page.get_by_role("link", name="Inbound rules").click()
    await page.get_by_label("Email address or domain").fill("blocked.example")
    await page.get_by_role("button", name="Add rule").click()
    await expect(page.get_by_role("status")).to_have_text("The rule is added: mail from that sender is blocked from now on.")
    await expect(page.get_by_role("row").filter(has_text="blocked.example")).to_contain_text("and its subdomains")
    rules = (await stack.api("GET", "/triggers/inboundrules?count=10&offset=0", server_token=stack.state["token"])).json()
    assert [r["Rule"] for r in rules["InboundRules"]] == ["blocked.example"]


async def test_mail_to_the_mx_listener_is_found_in_inbound_and_opened(page: Page, stack: Stack, mx: MxListener) -> None:
    local, _, domain = stack.state["inbound_address"].partition("@")
    ticket = f"{local}+ticket42@{domain}"
    await mx.mail(
        inbound_mail(
            sender="Zoë Kunde <zoe@customer.example>",
            to=f"Support <{ticket}>",
            subject="Re: Ticket 42",
            text="Yes, the update fixed it.\n\nOn Mon, 3 Mar 2025 at 10:02, Support <support@example.com> wrote:\n> Did the update help?\n",
            html="<h1 id='reply'>Yes, the update fixed it.</h1><blockquote>Did the update help?</blockquote>",
        ),
        sender="zoe@customer.example",
        recipient=ticket,
    )
    await mx.mail(
        inbound_mail(sender="ann@other.example", to=stack.state["inbound_address"], subject="Question about pricing", text="Hello?"),
        sender="ann@other.example",
        recipient=stack.state["inbound_address"],
    )
    await page.goto(f"/console/servers/{stack.state['server_id']}/inbound")
    await expect(page.get_by_role("link", name="Re: Ticket 42")).to_be_visible()
    await expect(page.get_by_role("link", name="Question about pricing")).to_be_visible()
    await page.get_by_label("Mailbox hash").fill("ticket42")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="Question about pricing")).to_have_count(0)
    await shot(page, "inbound")
    await page.get_by_role("link", name="Re: Ticket 42").click()
    await expect(page.get_by_role("heading", name="Re: Ticket 42")).to_be_visible()
    facts = page.locator("dl.facts").first
    await expect(facts).to_contain_text("Zoë Kunde <zoe@customer.example>")
    await expect(facts).to_contain_text("ticket42")
    await expect(page.locator("#stripped-reply")).to_have_text("Yes, the update fixed it.")
    await expect(page.frame_locator("iframe.preview").locator("#reply")).to_have_text("Yes, the update fixed it.")
    await expect(page.locator("#hook")).to_contain_text("Pending")
    await expect(page.locator("table.compact").last).to_contain_text("Received")
    await shot(page, "inbound-message")


async def test_a_blocked_message_is_bypassed(page: Page, stack: Stack, mx: MxListener) -> None:
    await mx.mail(
        inbound_mail(sender="Spam <offers@mail.blocked.example>", to=stack.state["inbound_address"], subject="You won", text="Click"),
        sender="offers@mail.blocked.example",
        recipient=stack.state["inbound_address"],
    )
    await page.goto(f"/console/servers/{stack.state['server_id']}/inbound")
    await page.get_by_label("Status").select_option("Blocked")
    await page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text="You won")
    await expect(row).to_contain_text("Blocked")
    await row.get_by_role("link", name="You won").click()
    await expect(page.get_by_text("Blocked by the inbound rule 'blocked.example'.").first).to_be_visible()
    message_id = page.url.rsplit("/", 1)[1]
    await page.get_by_role("button", name="Bypass").click()
    await expect(page.get_by_role("status")).to_contain_text("bypassed the inbound rules")
    await expect(page.get_by_role("button", name="Bypass")).to_have_count(0)
    await expect(page.locator("header .badge")).to_have_text("Queued")
    details = (await stack.api("GET", f"/messages/inbound/{message_id}/details", server_token=stack.state["token"])).json()
    assert details["Status"] == "Queued"


async def test_script_in_received_mail_runs_nowhere(page: Page, stack: Stack, mx: MxListener, seen: Seen) -> None:
    probe = "/xss-probe-inbound"
    await mx.mail(
        inbound_mail(
            sender="<script>alert('from')</script> <attacker@evil.example>",
            to=stack.state["inbound_address"],
            subject="<img src=x onerror=alert('subject')>",
            text="</pre><script>alert('text')</script>",
            html=(
                "<p id='greeting'>Hello from the attacker</p>"
                f"<script>alert('script'); fetch('{probe}/script'); parent.document.title = 'pwned';</script>"
                f"<img src='x' onerror=\"alert('onerror'); fetch('{probe}/onerror')\">"
                "<svg onload=\"alert('svg')\"></svg>"
                f"<iframe srcdoc=\"<script>alert('nested'); fetch('{probe}/nested')</script>\"></iframe>"
                "<a id='js' href=\"javascript:alert('link')\">click me</a>"
            ),
        ),
        sender="attacker@evil.example",
        recipient=stack.state["inbound_address"],
    )
    await page.goto(f"/console/servers/{stack.state['server_id']}/inbound")
    await page.get_by_role("link", name="<img src=x onerror=alert('subject')>").click()
    frame = page.frame_locator("iframe.preview")
    await expect(frame.locator("#greeting")).to_have_text("Hello from the attacker")
    await frame.locator("#js").click()
    await page.wait_for_load_state("load")
    await expect(page.locator("#text-body")).to_contain_text("<script>alert('text')</script>")
    assert seen.dialogs == []
    assert not [u for u in seen.requests if probe in u]
    assert (await page.title()) != "pwned"
    assert (await page.locator("iframe.preview").get_attribute("sandbox")) == ""


async def test_api_docs_render_offline(page: Page) -> None:
    await page.goto("/docs")
    await expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    assert (await page.locator(".opblock").count()) > 20
    await expect(page.locator(".opblock-summary-path").filter(has_text=re.compile(r"^/email/batch$"))).to_be_visible()
    await page.wait_for_load_state("networkidle")  # late requests are checked too
    await shot(page, "docs")
