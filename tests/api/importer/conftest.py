"""A second Postgate, on its own database and loopback port, populated through its API: the account to move."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from api_service.config import Settings
from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, with_database
from api_service.main import create_app
from tests.compat.conftest import clean_live_api, free_port, live_api

__all__ = ["clean_live_api", "live_api"]

SOURCE_ACCOUNT = "source-account-token"


@dataclass(frozen=True)
class Source:
    url: str
    shop_token: str
    blog_token: str
    template_ids: dict[str, int]

    @property
    def account(self) -> dict[str, str]:
        return {"X-Postmark-Account-Token": SOURCE_ACCOUNT}


def serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the source API did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def ok(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def populate(url: str) -> Source:
    """Two servers with settings, streams (one renamed, one archived), layouts and templates, webhooks, suppressions;
    a sender signature and a domain. Everything through the API, as a user would."""
    account = {"X-Postmark-Account-Token": SOURCE_ACCOUNT}
    with httpx.Client(base_url=url, headers={"Accept": "application/json"}) as api:
        shop = ok(
            api.post(
                "/servers",
                headers=account,
                json={"Name": "Shop", "Color": "Blue", "TrackOpens": True, "BounceHookUrl": "https://hooks.shop.example/bounce"},
            )
        )
        blog = ok(api.post("/servers", headers=account, json={"Name": "Blog", "DeliveryType": "Sandbox", "SmtpApiActivated": True}))
        ok(
            api.post(
                "/senders", headers=account, json={"FromEmail": "ops@shop.example", "Name": "Ops", "ReplyToEmail": "help@shop.example"}
            )
        )
        ok(api.post("/domains", headers=account, json={"Name": "shop.example", "ReturnPathDomain": "pm.shop.example"}))

        shop_token, blog_token = str(shop["ApiTokens"][0]), str(blog["ApiTokens"][0])  # type: ignore[index]
        s = {"X-Postmark-Server-Token": shop_token}
        ok(api.patch("/message-streams/outbound", headers=s, json={"Name": "Receipts", "Description": "Order mail"}))
        stream = {"ID": "newsletters", "Name": "Newsletters", "MessageStreamType": "Broadcasts", "Description": "Monthly"}
        ok(api.post("/message-streams", headers=s, json=stream))
        ok(api.post("/message-streams", headers=s, json={"ID": "old", "Name": "Old", "MessageStreamType": "Broadcasts"}))
        ok(api.post("/message-streams/old/archive", headers=s))
        layout = {
            "Name": "Base",
            "Alias": "base",
            "TemplateType": "Layout",
            "HtmlBody": "<html><body><h1>{{ shop }}</h1>{{{ @content }}}</body></html>",
            "TextBody": "{{ shop }}\n{{{ @content }}}",
        }
        ids = {"base": int(ok(api.post("/templates", headers=s, json=layout))["TemplateId"])}  # type: ignore[call-overload]
        welcome = {
            "Name": "Welcome",
            "Alias": "welcome",
            "LayoutTemplate": "base",
            "Subject": "Welcome, {{ name }}",
            "HtmlBody": "<p>Hi {{ name }}</p>",
            "TextBody": "Hi {{ name }}",
        }
        ids["welcome"] = int(ok(api.post("/templates", headers=s, json=welcome))["TemplateId"])  # type: ignore[call-overload]
        plain = {"Name": "No alias", "Subject": "Plain", "TextBody": "Plain {{ x }}"}
        ids["plain"] = int(ok(api.post("/templates", headers=s, json=plain))["TemplateId"])  # type: ignore[call-overload]
        hook = {
            "Url": "https://hooks.shop.example/pm",
            "MessageStream": "outbound",
            "HttpAuth": {"Username": "u", "Password": "p"},
            "HttpHeaders": [{"Name": "X-Shop", "Value": "1"}],
            "Triggers": {"Delivery": {"Enabled": True}, "Bounce": {"Enabled": True, "IncludeContent": True}},
        }
        ok(api.post("/webhooks", headers=s, json=hook))
        suppressed = {"Suppressions": [{"EmailAddress": "gone@example.net"}, {"EmailAddress": "left@example.net"}]}
        ok(api.post("/message-streams/outbound/suppressions", headers=s, json=suppressed))
        ok(api.post("/message-streams/newsletters/suppressions", headers=s, json={"Suppressions": [{"EmailAddress": "nope@example.net"}]}))

        b = {"X-Postmark-Server-Token": blog_token}
        ids["post"] = int(
            ok(
                api.post(
                    "/templates",
                    headers=b,
                    json={"Name": "Post", "Alias": "post", "Subject": "New: {{ title }}", "HtmlBody": "<h2>{{ title }}</h2>"},
                )
            )["TemplateId"]
        )  # type: ignore[call-overload]
    return Source(url=url, shop_token=shop_token, blog_token=blog_token, template_ids=ids)


@pytest.fixture(scope="module")
def source(database_url: str) -> Iterator[Source]:
    url = with_database(database_url, f"postgate_source_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    # Signatures confirmed at creation, as on Postmark's side (a Postgate that mails confirmation
    # links would also hold its own system server and sender, which are not the account's to move).
    settings = Settings(database_url=url, account_token=SOURCE_ACCOUNT, db_pool_size=2, db_max_overflow=2, sender_auto_confirm=True)
    api_url, server, thread = serve(settings)
    try:
        yield populate(api_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        drop_database(url)
