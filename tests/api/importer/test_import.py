"""`postgate import` from a second Postgate (populated through its API) into this one: a dry run writes nothing,
`--apply` moves everything, a second run has nothing to do, and the imported templates send."""

from __future__ import annotations

import asyncio
import io
import sys
from typing import Any

import httpx
import pytest
from rich.console import Console

from api_service.config import Settings
from api_service.devtools import launcher
from api_service.importer import cli
from api_service.importer.service import Action, Report, Section
from tests.api.importer.conftest import SOURCE_ACCOUNT, Source
from tests.conftest import ACCOUNT_TOKEN

pytestmark = pytest.mark.slow
ACCOUNT = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}


def run_import(settings: Settings, source: Source, *extra: str) -> Report:
    args = cli.parser().parse_args(
        [
            "--source-url",
            source.url,
            "--account-token",
            SOURCE_ACCOUNT,
            "--server-token",
            source.shop_token,
            "--server-token",
            source.blog_token,
            *extra,
        ]
    )
    return asyncio.run(cli.run(args, settings, Console(file=io.StringIO())))


def get(api: httpx.Client, path: str, **headers: str) -> Any:
    response = api.get(path, headers=headers or ACCOUNT)
    assert response.status_code == 200, response.text
    return response.json()


def actions(report: Report, section: Section) -> dict[str, Action]:
    return {f"{c.owner}/{c.name}": c.action for c in report.changes if c.section is section and c.action is not Action.SKIPPED}


class TestImport:
    def test_a_dry_run_reports_everything_and_writes_nothing(self, settings: Settings, source: Source, clean_live_api: str) -> None:
        report = run_import(settings, source)
        counts = report.counts()
        assert counts[Section.SERVERS][Action.CREATE] == 2
        assert counts[Section.TEMPLATES][Action.CREATE] == 4
        streams = counts[Section.STREAMS]  # two new; outbound renamed and old archived; the other defaults as they are
        assert (streams[Action.CREATE], streams[Action.UPDATE], streams[Action.UNCHANGED]) == (2, 2, 5)
        assert counts[Section.SUPPRESSIONS][Action.CREATE] == 3
        assert (counts[Section.SIGNATURES][Action.CREATE], counts[Section.DOMAINS][Action.CREATE]) == (1, 1)
        assert counts[Section.WEBHOOKS][Action.CREATE] == 1
        assert not report.failed
        assert report.tokens == {}  # nothing was created
        with httpx.Client(base_url=clean_live_api) as api:
            assert get(api, "/servers?count=10&offset=0")["TotalCount"] == 0
            assert get(api, "/senders?count=10&offset=0")["TotalCount"] == 0

    def test_apply_moves_the_account_and_a_second_run_has_nothing_to_do(
        self, settings: Settings, source: Source, clean_live_api: str
    ) -> None:
        with httpx.Client(base_url=clean_live_api, headers={"Accept": "application/json"}) as api:
            # A template here already holds the id of the source's first one: that one gets a new id.
            other = api.post("/servers", json={"Name": "Here already"}, headers=ACCOUNT).json()
            taken = api.post(
                "/templates",
                json={"Name": "Mine", "Subject": "x", "TextBody": "x"},
                headers={"X-Postmark-Server-Token": other["ApiTokens"][0]},
            ).json()
            assert taken["TemplateId"] == source.template_ids["base"]

            report = run_import(settings, source, "--apply")
            assert not report.failed, report.failed
            assert sorted(report.tokens) == ["Blog", "Shop"]
            shop = {"X-Postmark-Server-Token": report.tokens["Shop"]}
            blog = {"X-Postmark-Server-Token": report.tokens["Blog"]}

            server = get(api, "/server", **shop)
            assert (server["Color"].capitalize(), server["TrackOpens"], server["BounceHookUrl"]) == (
                "Blue",
                True,
                "https://hooks.shop.example/bounce",
            )
            blog_server = get(api, "/server", **blog)
            assert (blog_server["DeliveryType"], blog_server["SmtpApiActivated"]) == ("Sandbox", True)

            streams = {s["ID"]: s for s in get(api, "/message-streams?IncludeArchivedStreams=true", **shop)["MessageStreams"]}
            assert (streams["outbound"]["Name"], streams["outbound"]["Description"]) == ("Receipts", "Order mail")
            assert (streams["newsletters"]["MessageStreamType"], streams["newsletters"]["Description"]) == ("Broadcasts", "Monthly")
            assert streams["old"]["ArchivedAt"] is not None

            templates = {t["Alias"] or t["Name"]: t for t in get(api, "/templates?count=100&offset=0", **shop)["Templates"]}
            assert templates["welcome"]["TemplateId"] == source.template_ids["welcome"]  # kept: it was free
            assert templates["No alias"]["TemplateId"] == source.template_ids["plain"]
            assert templates["base"]["TemplateId"] != source.template_ids["base"]  # taken here
            welcome = get(api, "/templates/welcome", **shop)
            assert (welcome["LayoutTemplate"], welcome["Subject"]) == ("base", "Welcome, {{ name }}")

            [hook] = get(api, "/webhooks", **shop)["Webhooks"]
            assert (hook["Url"], hook["HttpAuth"], hook["HttpHeaders"]) == (
                "https://hooks.shop.example/pm",
                {"Username": "u", "Password": "p"},
                [{"Name": "X-Shop", "Value": "1"}],
            )
            assert hook["Triggers"]["Bounce"] == {"Enabled": True, "IncludeContent": True}

            dump = get(api, "/message-streams/outbound/suppressions/dump", **shop)["Suppressions"]
            assert sorted(s["EmailAddress"] for s in dump) == ["gone@example.net", "left@example.net"]
            assert {(s["SuppressionReason"], s["Origin"]) for s in dump} == {("ManualSuppression", "Customer")}

            [signature] = get(api, "/senders?count=10&offset=0")["SenderSignatures"]
            assert (signature["EmailAddress"], signature["ReplyToEmailAddress"]) == ("ops@shop.example", "help@shop.example")
            [domain] = get(api, "/domains?count=10&offset=0")["Domains"]
            details = get(api, f"/domains/{domain['ID']}")
            assert details["ReturnPathDomain"] == "pm.shop.example"
            assert [(r.host, r.value) for r in report.dns if r.kind.startswith("TXT")] == [(details["DKIMHost"], details["DKIMTextValue"])]

            # The imported template sends, in its imported layout, from the imported domain.
            sent = api.post(
                "/email/withTemplate",
                json={
                    "From": "news@shop.example",
                    "To": "ann@example.net",
                    "TemplateAlias": "welcome",
                    "TemplateModel": {"name": "Ann", "shop": "Shop"},
                },
                headers=shop,
            )
            assert sent.status_code == 200, sent.text
            message = get(api, f"/messages/outbound/{sent.json()['MessageID']}/details", **shop)
            assert message["Subject"] == "Welcome, Ann"
            assert "<h1>Shop</h1><p>Hi Ann</p>" in message["HtmlBody"]

        again = run_import(settings, source, "--apply")
        assert again.nothing_to_do, [c for c in again.changes if c.action not in (Action.UNCHANGED, Action.SKIPPED)]
        assert again.tokens == {}

    def test_a_changed_source_is_updated_in_place(self, settings: Settings, source: Source, clean_live_api: str) -> None:
        first = run_import(settings, source, "--apply")
        with httpx.Client(base_url=clean_live_api, headers={"Accept": "application/json"}) as api:
            shop = {"X-Postmark-Server-Token": first.tokens["Shop"]}
            assert api.put("/server", json={"Color": "Red"}, headers=shop).status_code == 200
            assert api.put("/templates/welcome", json={"Subject": "Changed here"}, headers=shop).status_code == 200
            hook_id = get(api, "/webhooks", **shop)["Webhooks"][0]["ID"]
            assert api.put(f"/webhooks/{hook_id}", json={"Triggers": {"Delivery": {"Enabled": False}}}, headers=shop).status_code == 200

            report = run_import(settings, source, "--apply")
            assert actions(report, Section.SERVERS)["Shop/Shop"] is Action.UPDATE
            assert actions(report, Section.TEMPLATES)["Shop/welcome"] is Action.UPDATE
            assert actions(report, Section.WEBHOOKS)["Shop/outbound: https://hooks.shop.example/pm"] is Action.UPDATE
            assert get(api, "/server", **shop)["Color"].lower() == "blue"
            assert get(api, "/templates/welcome", **shop)["Subject"] == "Welcome, {{ name }}"
            assert get(api, f"/webhooks/{hook_id}", **shop)["Triggers"]["Delivery"]["Enabled"] is True
        assert run_import(settings, source, "--apply").nothing_to_do


class TestCommandLine:
    def test_main_prints_the_plan_and_the_unreadable_source_exits_2(self, settings: Settings, source: Source, clean_live_api: str) -> None:
        out = io.StringIO()
        code = cli.main(
            ["--source-url", source.url, "--account-token", SOURCE_ACCOUNT], settings=settings, console=Console(file=out, width=200)
        )
        text = out.getvalue()
        assert code == 0
        assert "dry run" in text
        assert "Run again with --apply" in text
        # Postgate masks a server's tokens after creation: with the account token alone, its content is skipped, said so.
        assert "no server token for 'Shop'" in text

        out = io.StringIO()
        code = cli.main(["--source-url", source.url, "--account-token", "wrong"], settings=settings, console=Console(file=out, width=200))
        assert code == 2
        assert "Cannot read the source" in out.getvalue()

    def test_a_token_is_required(self, settings: Settings) -> None:
        out = io.StringIO()
        assert cli.main(["--source-url", "http://127.0.0.1:9"], settings=settings, console=Console(file=out)) == 2
        assert "account token" in out.getvalue()

    def test_postgate_import_is_the_launchers_subcommand(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setattr(sys, "argv", ["postgate", "import", "--help"])
        with pytest.raises(SystemExit) as exited:
            launcher.main()
        assert exited.value.code == 0
        assert "--apply" in capsys.readouterr().out
