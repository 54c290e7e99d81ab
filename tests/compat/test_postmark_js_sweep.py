"""Every public method of postmark.js's `ServerClient` and `AccountClient`, called against a populated server.

The method list comes from the client itself (`Object.getOwnPropertyNames(<Client>.prototype)`), so
a new client version's new method fails this test until `CALLS` gives it arguments. A method that
works must answer the shape its typings declare (`Promise<Model>` in `<Client>.d.ts`: the required
fields of `Model`). Methods Postgate
does not implement yet are in `KNOWN_MISSING`; each must still fail, so a method that starts working
fails the test until it is taken off the list. Every answer of a working method is also checked against the
type the client declares for it (`js_client.shape_differences`: required fields, kinds of values, enum values,
recursively), so a shape difference fails too, unless `KNOWN_SHAPE_DIFFERENCES` says why. See the whole table
with `pytest -s tests/compat/test_postmark_js_sweep.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_service.config import Settings
from shared.constants import BounceType
from tests.api.conftest import Receiver, receiver
from tests.compat.factories import add_bounce, post_webhooks, send_inbound, unconfirm_sender
from tests.compat.js_client import CLIENTS, ClientKind, Outcome, PostmarkJs, PostmarkJsServer, shape_differences, typings

__all__ = ["receiver"]
pytestmark = pytest.mark.slow

SENDER = "app@compat.example"
SUPPRESSED = "quiet@example.net"
UNKNOWN_UUID = str(uuid.UUID(int=1))
TODAY = datetime.now(UTC).date()
STATS_FILTER = {"fromDate": str(TODAY - timedelta(days=7)), "toDate": str(TODAY), "messageStream": "outbound"}
PAGE = {"count": 10, "offset": 0}
TRACKING_PAGE = {"count": 10, "offset": 0, "messageStream": "outbound"}


@dataclass(frozen=True)
class Populated:
    """A server with mail, a bounce, a suppression, senders, domains, webhooks, spare servers and a data removal;
    `doomed_*` are for deletes. The sender's domain is a Domain too (its DKIM key is rotated)."""

    server: PostmarkJsServer
    message_id: str
    bounce_id: int
    sender_id: int
    unconfirmed_sender_id: int
    doomed_sender_id: int
    domain_id: int
    doomed_domain_id: int
    webhook_id: int
    doomed_webhook_id: int
    spare_server_id: int
    doomed_server_id: int
    inbound_id: str
    blocked_inbound_id: str
    failed_inbound_id: str
    doomed_rule_id: int
    data_removal_id: int
    bulk_id: str


def message(to: str = "user@example.net") -> dict[str, Any]:
    return {"From": SENDER, "To": to, "Subject": "Sweep", "TextBody": "sweep", "HtmlBody": "<p>sweep</p>", "Tag": "sweep"}


def bulk() -> dict[str, Any]:
    return {
        "From": SENDER,
        "Subject": "Hi {{name}}",
        "TextBody": "Hi {{name}}",
        "MessageStream": "broadcast",
        "Messages": [{"To": "a@example.net", "TemplateModel": {"name": "A"}}, {"To": "b@example.net", "TemplateModel": {"name": "B"}}],
    }


def templated(alias: str = "welcome") -> dict[str, Any]:
    return {"From": SENDER, "To": "user@example.net", "TemplateAlias": alias, "TemplateModel": {"name": "Ada"}}


def webhook(url: str) -> dict[str, Any]:
    return {"Url": url, "MessageStream": "outbound", "Triggers": {"Delivery": {"Enabled": True}, "Bounce": {"Enabled": True}}}


# "<client>.<method>" -> the arguments it is called with, built from the populated server.
Args = Callable[[Populated], tuple[Any, ...]]
CALLS: dict[str, Args] = {
    # sending
    "server.sendEmail": lambda p: (message(),),
    "server.sendEmailBatch": lambda p: ([message("a@example.net"), message("b@example.net")],),
    "server.sendEmailWithTemplate": lambda p: (templated(),),
    "server.sendEmailBatchWithTemplates": lambda p: ([templated(), templated()],),
    "server.sendBulkEmail": lambda p: (bulk(),),
    "server.getBulkEmailStatus": lambda p: (p.bulk_id,),
    # server
    "server.getServer": lambda p: (),
    "server.editServer": lambda p: ({"Color": "Blue", "TrackOpens": False},),
    # messages
    "server.getOutboundMessages": lambda p: (PAGE,),
    "server.getOutboundMessageDetails": lambda p: (p.message_id,),
    "server.getOutboundMessageDump": lambda p: (p.message_id,),
    "server.getInboundMessages": lambda p: ({**PAGE, "status": "blocked", "subject": "Offer"},),
    "server.getInboundMessageDetails": lambda p: (p.inbound_id,),
    "server.bypassBlockedInboundMessage": lambda p: (p.blocked_inbound_id,),
    "server.retryInboundHookForMessage": lambda p: (p.failed_inbound_id,),
    "server.getMessageOpens": lambda p: (TRACKING_PAGE,),
    "server.getMessageOpensForSingleMessage": lambda p: (p.message_id, PAGE),
    "server.getMessageClicks": lambda p: (TRACKING_PAGE,),
    "server.getMessageClicksForSingleMessage": lambda p: (p.message_id, PAGE),
    # bounces
    "server.getDeliveryStatistics": lambda p: (),
    "server.getBounces": lambda p: ({**PAGE, "type": "HardBounce", "messageStream": "outbound"},),
    "server.getBounce": lambda p: (p.bounce_id,),
    "server.getBounceDump": lambda p: (p.bounce_id,),
    "server.activateBounce": lambda p: (p.bounce_id,),
    # templates
    "server.getTemplates": lambda p: (PAGE,),
    "server.getTemplate": lambda p: ("welcome",),
    "server.createTemplate": lambda p: ({"Name": "Created", "Alias": "created", "Subject": "Hi {{name}}", "TextBody": "Hi {{name}}"},),
    "server.editTemplate": lambda p: ("welcome", {"Name": "Welcome again"}),
    "server.deleteTemplate": lambda p: ("farewell",),
    "server.validateTemplate": lambda p: ({"Subject": "Hi {{name}}", "TextBody": "Hi {{name}}", "TestRenderModel": {"name": "Ada"}},),
    # stats
    "server.getOutboundOverview": lambda p: (STATS_FILTER,),
    "server.getSentCounts": lambda p: (STATS_FILTER,),
    "server.getBounceCounts": lambda p: (STATS_FILTER,),
    "server.getSpamComplaintsCounts": lambda p: (STATS_FILTER,),
    "server.getTrackedEmailCounts": lambda p: (STATS_FILTER,),
    "server.getEmailOpenCounts": lambda p: (STATS_FILTER,),
    "server.getEmailOpenPlatformUsage": lambda p: (STATS_FILTER,),
    "server.getEmailOpenClientUsage": lambda p: (STATS_FILTER,),
    "server.getEmailOpenReadTimes": lambda p: (STATS_FILTER,),
    "server.getClickCounts": lambda p: (STATS_FILTER,),
    "server.getClickBrowserUsage": lambda p: (STATS_FILTER,),
    "server.getClickPlatformUsage": lambda p: (STATS_FILTER,),
    "server.getClickLocation": lambda p: (STATS_FILTER,),
    # inbound rules
    "server.createInboundRuleTrigger": lambda p: ({"Rule": "spammer@example.net"},),
    "server.getInboundRuleTriggers": lambda p: (PAGE,),
    "server.deleteInboundRuleTrigger": lambda p: (p.doomed_rule_id,),
    # webhooks
    "server.getWebhooks": lambda p: ({"messageStream": "outbound"},),
    "server.getWebhook": lambda p: (p.webhook_id,),
    "server.createWebhook": lambda p: (webhook("https://example.com/created"),),
    "server.editWebhook": lambda p: (p.webhook_id, {"Url": "https://example.com/edited", "Triggers": {"Open": {"Enabled": True}}}),
    "server.deleteWebhook": lambda p: (p.doomed_webhook_id,),
    # message streams
    "server.getMessageStreams": lambda p: ({"messageStreamType": "All", "includeArchivedStreams": True},),
    "server.getMessageStream": lambda p: ("outbound",),
    "server.editMessageStream": lambda p: ("outbound", {"Name": "Transactional", "Description": "Receipts"}),
    "server.createMessageStream": lambda p: ({"ID": "newsletters", "Name": "Newsletters", "MessageStreamType": "Broadcasts"},),
    "server.archiveMessageStream": lambda p: ("to-archive",),
    "server.unarchiveMessageStream": lambda p: ("archived",),
    # suppressions
    "server.getSuppressions": lambda p: ("outbound", {"suppressionReason": "ManualSuppression"}),
    "server.createSuppressions": lambda p: ("outbound", {"Suppressions": [{"EmailAddress": "hush@example.net"}]}),
    "server.deleteSuppressions": lambda p: ("outbound", {"Suppressions": [{"EmailAddress": SUPPRESSED}]}),
    # servers
    "account.getServers": lambda p: ({**PAGE, "name": "Compat"},),
    "account.getServer": lambda p: (p.server.id,),
    "account.createServer": lambda p: ({"Name": "Created", "Color": "Green"},),
    "account.editServer": lambda p: (p.spare_server_id, {"Name": "Spare, edited"}),
    "account.deleteServer": lambda p: (p.doomed_server_id,),
    # domains
    "account.getDomains": lambda p: (PAGE,),
    "account.getDomain": lambda p: (p.domain_id,),
    "account.createDomain": lambda p: ({"Name": "created.example"},),
    "account.editDomain": lambda p: (p.domain_id, {"ReturnPathDomain": "pm.compat-domain.example"}),
    "account.deleteDomain": lambda p: (p.doomed_domain_id,),
    "account.verifyDomainDKIM": lambda p: (p.domain_id,),
    "account.verifyDomainReturnPath": lambda p: (p.domain_id,),
    "account.verifyDomainSPF": lambda p: (p.domain_id,),
    "account.rotateDomainDKIM": lambda p: (p.domain_id,),
    # sender signatures
    "account.getSenderSignatures": lambda p: (PAGE,),
    "account.getSenderSignature": lambda p: (p.sender_id,),
    "account.createSenderSignature": lambda p: ({"FromEmail": "created@compat.example", "Name": "Created"},),
    "account.editSenderSignature": lambda p: (p.sender_id, {"Name": "Ops, edited"}),
    "account.deleteSenderSignature": lambda p: (p.doomed_sender_id,),
    "account.resendSenderSignatureConfirmation": lambda p: (p.unconfirmed_sender_id,),
    "account.verifySenderSignatureSPF": lambda p: (p.sender_id,),
    "account.requestNewDKIMForSenderSignature": lambda p: (p.sender_id,),
    # account-wide templates and data removal
    "account.pushTemplates": lambda p: (
        {"SourceServerID": p.server.id, "DestinationServerID": p.spare_server_id, "PerformChanges": False},
    ),
    "account.requestDataRemoval": lambda p: (
        {"RequestedBy": "admin@compat.example", "RequestedFor": "user@example.net", "NotifyWhenCompleted": False},
    ),
    "account.getDataRemovalStatus": lambda p: (p.data_removal_id,),
}

# Methods whose plausible call is answered with a Postmark domain error that still proves the
# endpoint works: "<client>.<method>" -> (HTTP status, ErrorCode). None today.
EXPECTED_ERRORS: dict[str, tuple[int, int]] = {}

# Methods that work but whose answer differs from the client's typings (`js_client.shape_differences`), and why.
# Each must still differ, so a fix shows up here. Where the typings contradict Postmark's documented answer, Postgate
# follows Postmark; the others are for the domain that owns the endpoint to decide.
KNOWN_SHAPE_DIFFERENCES: dict[str, str] = {
    "server.archiveMessageStream": "typings say ID is a number; Postmark answers the stream's ID, a string",
    "server.getOutboundMessages": "typings say TotalCount is a string; Postmark answers a number",
    "server.getInboundMessages": "typings say TotalCount is a string; Postmark answers a number",
    "server.validateTemplate": "typings say ValidationErrors is an object; Postmark answers an array of errors",
    "server.createTemplate": "typings say Template (content included); Postmark answers the summary (TemplateId, Name, Alias, …)",
    "server.editTemplate": "typings say Template (content included); Postmark answers the summary (TemplateId, Name, Alias, …)",
}

# Every method of the client works against Postgate; a method a newer client adds shows up here.
KNOWN_MISSING: set[str] = set()


@pytest.fixture
def populated(js_server: PostmarkJsServer, settings: Settings, mx_port: int, receiver: Receiver) -> Populated:
    js = js_server
    # Inbound mail, received by the MX listener: one blocked by a rule, one whose hook answered 403 (Failed).
    inbound_address = js.server("editServer", {"InboundHookUrl": receiver.url})["InboundAddress"]
    js.server("createInboundRuleTrigger", {"Rule": "offers.example"})
    doomed_rule = js.server("createInboundRuleTrigger", {"Rule": "old-rule.example"})
    blocked = send_inbound(mx_port, to=inbound_address, sender="deals@offers.example", subject="Offer")
    receiver.statuses.append(403)
    failed = send_inbound(mx_port, to=inbound_address, subject="Ticket")
    post_webhooks(settings)
    assert receiver.hooks, "the inbound hook was not called"
    sent = js.server("sendEmail", message())
    bounced = js.server("sendEmail", message("gone@example.net"))
    add_bounce(settings, js.id, BounceType.HARD_BOUNCE, "gone@example.net", bounced["MessageID"])
    js.server("createSuppressions", "outbound", {"Suppressions": [{"EmailAddress": SUPPRESSED}]})
    for alias in ("welcome", "farewell"):
        js.server("createTemplate", {"Name": alias.title(), "Alias": alias, "Subject": "Hi {{name}}", "TextBody": "Hello {{name}}"})
    for stream_id in ("to-archive", "archived"):
        js.server("createMessageStream", {"ID": stream_id, "Name": stream_id.title(), "MessageStreamType": "Broadcasts"})
    js.server("archiveMessageStream", "archived")
    [bounce] = js.server("getBounces", PAGE)["Bounces"]
    js.account("createDomain", {"Name": "compat.example"})
    return Populated(
        server=js,
        message_id=sent["MessageID"],
        bounce_id=bounce["ID"],
        sender_id=js.account("createSenderSignature", {"FromEmail": "ops@compat.example", "Name": "Ops"})["ID"],
        unconfirmed_sender_id=unconfirmed(
            settings, js.account("createSenderSignature", {"FromEmail": "new@compat.example", "Name": "New"})
        ),
        doomed_sender_id=js.account("createSenderSignature", {"FromEmail": "old@compat.example", "Name": "Old"})["ID"],
        domain_id=js.account("createDomain", {"Name": "compat-domain.example"})["ID"],
        doomed_domain_id=js.account("createDomain", {"Name": "old-domain.example"})["ID"],
        webhook_id=js.server("createWebhook", webhook("https://example.com/hook"))["ID"],
        doomed_webhook_id=js.server("createWebhook", webhook("https://example.com/old"))["ID"],
        spare_server_id=js.account("createServer", {"Name": "Spare"})["ID"],
        doomed_server_id=js.account("createServer", {"Name": "Doomed"})["ID"],
        inbound_id=failed,
        blocked_inbound_id=blocked,
        failed_inbound_id=failed,
        doomed_rule_id=doomed_rule["ID"],
        data_removal_id=js.account("requestDataRemoval", {"RequestedBy": "a@compat.example", "RequestedFor": "b@example.net"})["ID"],
        bulk_id=js.server("sendBulkEmail", bulk())["Id"],
    )


def unconfirmed(settings: Settings, created: dict[str, Any]) -> int:
    """The tests confirm signatures at creation (SENDER_AUTO_CONFIRM); this one waits for its link."""
    unconfirm_sender(settings, created["ID"])
    return int(created["ID"])


def works(name: str, outcome: Outcome) -> bool:
    if outcome.error is None:
        return True
    expected = EXPECTED_ERRORS.get(name)
    return expected is not None and expected == (outcome.error.status_code, outcome.error.code)


def describe(outcome: Outcome) -> str:
    if outcome.error is None:
        return "ok"
    error = outcome.error
    return f"{error.name} {error.code}: {error.message[:70]}"


def token_for(populated: Populated, kind: ClientKind) -> str:
    return populated.server.token if kind == "server" else populated.server.account_token


class TestEveryClientMethod:
    def test_implemented_methods_work_and_known_missing_ones_still_fail(self, populated: Populated, postmark_js: PostmarkJs) -> None:
        version, methods = postmark_js.describe()
        names = sorted(f"{kind}.{method}" for kind, kind_methods in methods.items() for method in kind_methods)
        problems = [f"{name}: a client method with no entry in CALLS; give it arguments" for name in names if name not in CALLS]
        problems += [
            f"{name}: listed here but not a method of postmark {version}"
            for name in (CALLS.keys() | KNOWN_MISSING | EXPECTED_ERRORS.keys() | KNOWN_SHAPE_DIFFERENCES.keys()) - set(names)
        ]

        rows = []
        for name in names:
            if name not in CALLS:
                continue
            kind_name, method = name.split(".")
            kind: ClientKind = "server" if kind_name == "server" else "account"
            outcome = postmark_js.outcome(kind, token_for(populated, kind), method, *CALLS[name](populated))
            status = outcome.http.status if outcome.http else None
            request = f"{outcome.http.method} {outcome.http.path.split('?')[0]}" if outcome.http else "(no request)"
            ok = works(name, outcome)
            shape = shape_differences(outcome.result, typings().returns[name], "result") if outcome.error is None else []
            rows.append((name, ok, status, request, describe(outcome) + "".join(f"; {d}" for d in shape)))
            if shape and name not in KNOWN_SHAPE_DIFFERENCES:
                problems += [f"{name}: the answer differs from postmark.js's typings: {d}" for d in shape]
            elif not shape and name in KNOWN_SHAPE_DIFFERENCES and ok:
                problems.append(f"{name}: its answer matches the typings now; take it off KNOWN_SHAPE_DIFFERENCES")
            if name in KNOWN_MISSING:
                if ok:
                    problems.append(f"{name}: works now ({request} -> {status}); take it off KNOWN_MISSING")
                elif status is None:
                    problems.append(f"{name}: failed before any HTTP response ({describe(outcome)}); fix its CALLS entry")
            elif not ok:
                problems.append(f"{name}: {request} -> {status} {describe(outcome)}")

        print(f"\npostmark {version}: {sum(row[1] for row in rows)} of {len(names)} client methods work against Postgate")
        width = max(len(row[0]) for row in rows)
        for name, ok, status, request, detail in rows:
            listed = " (KNOWN_MISSING)" if name in KNOWN_MISSING else ""
            print(f"  {name:<{width}}  {'works' if ok else 'FAILS'}  {status!s:>4}  {request}  {detail}{listed}")
        assert not problems, "\n".join(problems)


class TestEveryMethodLanded:
    def test_no_client_method_is_known_missing(self) -> None:
        assert not KNOWN_MISSING, sorted(KNOWN_MISSING)


class TestShapeDifferences:
    @pytest.fixture(autouse=True)
    def _typings(self) -> None:
        if not CLIENTS.is_dir():
            pytest.skip("postmark.js is not installed: run `make install`")

    def test_a_missing_field_a_wrong_kind_and_an_unknown_enum_value_are_seen(self) -> None:
        answer = {"Id": "x", "Status": "Sent", "SubmittedAt": "t", "TotalMessages": "1", "PercentageCompleted": 0}
        assert shape_differences(answer, typings().returns["server.getBulkEmailStatus"], "result") == [
            "result.Subject: required by BulkEmailStatusResponse, missing",
            "result.Status: one of ['Accepted', 'Completed', 'Failed', 'Processing'] expected, got 'Sent'",
            "result.TotalMessages: number expected, got a string",
        ]

    def test_arrays_and_nested_models_are_checked_item_by_item(self) -> None:
        answer = {"TotalCount": 1, "Bounces": [{"ID": 1}]}
        differences = shape_differences(answer, typings().returns["server.getBounces"], "result")
        assert "result.Bounces[0].Email: required by Bounce, missing" in differences
        assert shape_differences([{"ErrorCode": 0, "Message": "OK"}], "MessageSendingResponse[]", "result") == [
            "result[0].SubmittedAt: required by MessageSendingResponse, missing",
            "result[0].MessageID: required by MessageSendingResponse, missing",
        ]
        assert shape_differences({"ErrorCode": None, "Message": "OK"}, "DefaultResponse", "result") == []  # null passes
