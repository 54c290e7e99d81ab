"""Opens and clicks by machines (beyond Postmark): each rule of `tracking/machines.toml` on fixtures, then over
HTTP: a fetch from an Apple MPP address and a click 2 s after delivery from a scanner network are machines, the
stats count people with both numbers shown, and PostFirstOpenOnly waits for a person's open."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import update

from api_service.models import MessageRecipient
from api_service.tracking import machines
from api_service.tracking.machines import Hit, classify
from tests.api.conftest import Receiver, SinkHandler, Worker
from tests.api.tracking.conftest import CHROME_MAC, IPHONE_MAIL, read_copy
from tests.factories import ACCOUNT, ServerHandle, message, sending_server

GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
PERSON_IP = "81.2.69.142"


class TestRules:
    @pytest.mark.parametrize(
        ("hit", "method", "agent", "ip", "reason"),
        [
            (Hit.OPEN, "GET", IPHONE_MAIL, "17.58.63.1", "AppleMailPrivacyProtection"),
            (Hit.OPEN, "GET", IPHONE_MAIL, "172.225.10.20", "AppleMailPrivacyProtection"),
            (Hit.OPEN, "GET", IPHONE_MAIL, "2a02:26f7:b3c0:4000::1", "AppleMailPrivacyProtection"),
            (Hit.OPEN, "GET", "Mozilla/5.0", PERSON_IP, "AppleMailPrivacyProtection"),
            (Hit.OPEN, "GET", GMAIL_PROXY, PERSON_IP, "GmailImageProxy"),
            (Hit.OPEN, "GET", CHROME_MAC, "66.249.84.10", "GmailImageProxy"),
            (Hit.OPEN, "GET", YAHOO_PROXY, PERSON_IP, "YahooMailProxy"),
            (Hit.CLICK, "GET", CHROME_MAC, "40.107.22.5", "MicrosoftSafeLinks"),
            (Hit.CLICK, "GET", CHROME_MAC, "::ffff:104.47.1.9", "MicrosoftSafeLinks"),
            (Hit.CLICK, "GET", "Mozilla/5.0 (compatible; BingPreview/1.0b)", PERSON_IP, "MicrosoftSafeLinks"),
            (Hit.CLICK, "GET", CHROME_MAC, "205.139.110.40", "Mimecast"),
            (Hit.CLICK, "GET", CHROME_MAC, "148.163.140.2", "Proofpoint"),
            (Hit.CLICK, "GET", CHROME_MAC, "64.235.150.7", "Barracuda"),
            (Hit.CLICK, "GET", "python-requests/2.31", PERSON_IP, "LinkScanner"),
            (Hit.CLICK, "HEAD", CHROME_MAC, PERSON_IP, "HeadRequest"),
            (Hit.OPEN, "HEAD", IPHONE_MAIL, PERSON_IP, "HeadRequest"),
        ],
    )
    def test_rule_marks_a_machine(self, hit: Hit, method: str, agent: str, ip: str, reason: str) -> None:
        assert classify(hit=hit, method=method, user_agent=agent, ip=ip, seconds_since_delivery=3600) == machines.Verdict(True, reason)

    def test_click_on_delivery_is_a_scanner(self) -> None:
        verdict = classify(hit=Hit.CLICK, method="GET", user_agent=CHROME_MAC, ip=PERSON_IP, seconds_since_delivery=2)
        assert verdict == machines.Verdict(True, machines.CLICK_ON_DELIVERY)

    def test_many_links_within_a_second_is_a_scanner(self) -> None:
        verdict = classify(
            hit=Hit.CLICK, method="GET", user_agent=CHROME_MAC, ip=PERSON_IP, seconds_since_delivery=600, other_links_just_before=2
        )
        assert verdict == machines.Verdict(True, machines.MANY_LINKS_AT_ONCE)

    def test_a_person(self) -> None:
        for hit in Hit:
            assert classify(hit=hit, method="GET", user_agent=CHROME_MAC, ip=PERSON_IP, seconds_since_delivery=600) == machines.PERSON
        # An open soon after delivery is a person's: people do open at once; only clicks have the rule.
        assert classify(hit=Hit.OPEN, method="GET", user_agent=IPHONE_MAIL, ip=PERSON_IP, seconds_since_delivery=1) == machines.PERSON

    def test_every_rule_names_its_source_and_parses(self) -> None:
        data = tomllib.loads(machines.RULES_FILE.read_text())
        for rule in [*data["network"], *data["agent"]]:
            assert rule["reason"]
            assert len(rule["source"]) > 20
        table = machines.parse_rules(data)
        assert table.networks
        assert table.exact_agents

    def test_a_rule_turned_off_counts_as_people(self) -> None:
        data = tomllib.loads(machines.RULES_FILE.read_text())
        for rule in data["agent"]:
            if rule["reason"] == "GmailImageProxy":
                rule["machine"] = False
        table = machines.parse_rules(data)
        assert classify(hit=Hit.OPEN, method="GET", user_agent=GMAIL_PROXY, ip=PERSON_IP, table=table) == machines.PERSON


# --- over HTTP ------------------------------------------------------------------------------------------------

HTML = '<p>Hi <a href="https://example.com/a">A</a> <a href="https://example.com/b">B</a> <a href="https://example.com/c">C</a></p>'


@pytest_asyncio.fixture
async def server(client: httpx.AsyncClient, receiver: Receiver) -> ServerHandle:
    server = await sending_server(client)
    first_only = {"Url": receiver.url + "/first-only", "Triggers": {"Open": {"Enabled": True, "PostFirstOpenOnly": True}}}
    every = {"Url": receiver.url + "/every", "Triggers": {"Open": {"Enabled": True}, "Click": {"Enabled": True}}}
    for hook in (first_only, every):
        assert (await client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
    return server


@pytest_asyncio.fixture
async def reader(app: FastAPI) -> AsyncIterator[Any]:
    """`reader(ip)`: a client of the API seen from that address (the tracking URLs read the peer address)."""
    clients: list[httpx.AsyncClient] = []

    def make(ip: str, agent: str = CHROME_MAC) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        made = httpx.AsyncClient(transport=transport, base_url="http://postgate.test", headers={"User-Agent": agent})
        clients.append(made)
        return made

    yield make
    for made in clients:
        await made.aclose()


async def delivered(client: httpx.AsyncClient, server: ServerHandle, worker: Worker, sink: tuple[SinkHandler, int]) -> dict[str, Any]:
    body = message(To="reader@example.net", HtmlBody=HTML, TrackOpens=True, TrackLinks="HtmlOnly")
    sent = await client.post("/email", json=body, headers=server.headers)
    assert sent.status_code == 200, sent.text
    assert await worker.deliver() == 1
    html = read_copy(sink[0].received[-1].data).html
    found = re.findall(r"/t/([oc])/([A-Za-z0-9_-]{40,})", html)
    [pixel] = [f"/t/o/{token}" for segment, token in found if segment == "o"]
    return {"id": sent.json()["MessageID"], "open": pixel, "links": [f"/t/c/{token}" for segment, token in found if segment == "c"]}


async def age_delivery(app: FastAPI, seconds: float) -> None:
    """As if the message had been delivered `seconds` ago (so a click now is not one on arrival)."""
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(update(MessageRecipient).values(delivered_at=datetime.now(UTC) - timedelta(seconds=seconds)))


async def webhooks(worker: Worker, receiver: Receiver) -> list[tuple[str, dict[str, Any]]]:
    async with httpx.AsyncClient() as http:
        await worker.hooks(http)
    found = [(h.path, h.json) for h in receiver.hooks]
    receiver.hooks.clear()
    return found


@pytest.mark.asyncio
class TestOverHttp:
    async def test_mpp_open_and_scanner_click_are_machines_and_stats_show_both(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        sink: tuple[SinkHandler, int],
        receiver: Receiver,
        reader: Any,
    ) -> None:
        mail = await delivered(client, server, worker, sink)
        assert (await reader("17.58.63.1", IPHONE_MAIL).get(mail["open"])).status_code == 200  # Apple MPP prefetch
        assert (await reader("205.139.110.40").get(mail["links"][0])).status_code == 302  # Mimecast, 0-2 s after delivery
        hooks = sorted(await webhooks(worker, receiver), key=lambda hook: str(hook[1]["RecordType"]), reverse=True)
        # A machine's open goes to the every-open hook, marked; PostFirstOpenOnly waits for a person.
        assert [(p, b["RecordType"], b["Machine"], b["MachineReason"]) for p, b in hooks] == [
            ("/hook/every", "Open", True, "AppleMailPrivacyProtection"),
            ("/hook/every", "Click", True, "Mimecast"),
        ]
        assert hooks[0][1]["Geo"]["CountryISOCode"] == "US"

        await age_delivery(app, 600)
        assert (await reader(PERSON_IP, IPHONE_MAIL).get(mail["open"])).status_code == 200
        assert (await reader(PERSON_IP).get(mail["links"][0])).status_code == 302
        hooks = await webhooks(worker, receiver)
        assert sorted((p, b["RecordType"], b["Machine"], b.get("FirstOpen")) for p, b in hooks) == [
            ("/hook/every", "Click", False, None),  # a person's first click of a link a scanner followed first
            ("/hook/every", "Open", False, False),
            ("/hook/first-only", "Open", False, False),  # the first person's open; Postmark's FirstOpen was the proxy's
        ]
        assert hooks[0][1]["Geo"] == {"CountryISOCode": "GB", "Country": "United Kingdom", "IP": PERSON_IP}

        opens = (await client.get("/messages/outbound/opens?count=10&offset=0", headers=server.headers)).json()["Opens"]
        assert sorted((o["Machine"], o["MachineReason"]) for o in opens) == [(False, ""), (True, "AppleMailPrivacyProtection")]
        stats = (await client.get("/stats/outbound", headers=server.headers)).json()
        assert (stats["Opens"], stats["UniqueOpens"], stats["TotalClicks"], stats["UniqueLinksClicked"]) == (1, 1, 1, 1)
        assert (stats["MachineOpens"], stats["MachineClicks"]) == (1, 1)
        everything = (await client.get("/stats/outbound?includeMachines=true", headers=server.headers)).json()
        assert (everything["Opens"], everything["UniqueOpens"], everything["TotalClicks"]) == (2, 1, 2)

    async def test_many_links_at_once_and_head_requests(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        server: ServerHandle,
        worker: Worker,
        sink: tuple[SinkHandler, int],
        reader: Any,
    ) -> None:
        mail = await delivered(client, server, worker, sink)
        await age_delivery(app, 600)
        scanner = reader(PERSON_IP)
        for link in mail["links"]:
            assert (await scanner.get(link)).status_code == 302
        head = await reader("81.2.69.143").head(mail["open"])
        assert head.status_code == 200
        clicks = (await client.get("/messages/outbound/clicks?count=10&offset=0", headers=server.headers)).json()["Clicks"]
        reasons = sorted(c["MachineReason"] for c in clicks)
        assert reasons == ["", "", machines.MANY_LINKS_AT_ONCE]  # the third link within the second
        [opened] = (await client.get("/messages/outbound/opens?count=10&offset=0", headers=server.headers)).json()["Opens"]
        assert opened["MachineReason"] == machines.HEAD_REQUEST

    async def test_geo_details_show_the_database_date(self, client: httpx.AsyncClient) -> None:
        details = (await client.get("/health/details", headers=ACCOUNT)).json()
        assert details["GeoIP"]["Date"] == "2024-06-18"
        assert "GeoLite2-Country" in details["GeoIP"]["Description"]
        assert (await client.get("/health/details")).status_code == 401
