"""Postmark's Python client, unchanged, against Postgate: every endpoint Postgate implements."""

from __future__ import annotations

import base64
import email
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

from api_service.config import Settings
from shared.constants import BounceType
from tests.api.conftest import Receiver, SinkHandler, receiver
from tests.compat.conftest import free_port
from tests.compat.factories import add_bounce, deliver_queued, post_webhooks, send_inbound
from tests.conftest import ACCOUNT_TOKEN

__all__ = ["receiver"]
pytestmark = pytest.mark.slow


@pytest.fixture
def postmark(clean_live_api: str) -> PostmarkClient:
    created = httpx.post(f"{clean_live_api}/servers", json={"Name": "Compat"}, headers={"X-Postmark-Account-Token": ACCOUNT_TOKEN})
    assert created.status_code == 200, created.text
    client = PostmarkClient(server_token=created.json()["ApiTokens"][0], account_token=ACCOUNT_TOKEN, root_api_url=clean_live_api + "/")
    client.senders.create(FromEmail="app@compat.example", Name="App")
    return client


class TestPostmarkerEmails:
    def test_send_with_attachment_and_read_it_back(self, postmark: PostmarkClient) -> None:
        result = postmark.emails.send(
            From="App <app@compat.example>",
            To="user@example.net",
            Cc="copy@example.net",
            Subject="Invoice",
            HtmlBody="<p>Attached</p>",
            TextBody="Attached",
            Tag="invoice",
            Metadata={"order": "42"},
            Headers={"X-Order": "42"},
            Attachments=[{"Name": "invoice.txt", "Content": base64.b64encode(b"total: 1").decode(), "ContentType": "text/plain"}],
        )
        assert result["ErrorCode"] == 0
        assert result["To"] == "user@example.net"
        message = postmark.messages.outbound.get(result["MessageID"])
        assert message.Subject == "Invoice"
        assert message.Tag == "invoice"
        assert message.Metadata == {"order": "42"}
        assert message.Attachments == ["invoice.txt"]
        assert message.TextBody.strip() == "Attached"
        assert [r["Email"] for r in message.Cc] == ["copy@example.net"]
        assert "X-Order: 42" in postmark.messages.outbound.get_dump(result["MessageID"])

    def test_batch(self, postmark: PostmarkClient) -> None:
        results = postmark.emails.send_batch(
            {"From": "app@compat.example", "To": "a@example.net", "Subject": "A", "TextBody": "a"},
            {"From": "nobody@elsewhere.example", "To": "b@example.net", "Subject": "B", "TextBody": "b"},
        )
        assert [r["ErrorCode"] for r in results] == [0, 400]
        assert len(postmark.messages.outbound.all(count=10)) == 1

    def test_errors_raise_client_error_with_code(self, postmark: PostmarkClient) -> None:
        with pytest.raises(ClientError) as caught:
            postmark.emails.send(From="app@compat.example", To="", Subject="x", TextBody="x")
        assert caught.value.error_code == 300

    def test_outbound_search_filters(self, postmark: PostmarkClient) -> None:
        postmark.emails.send(From="app@compat.example", To="a@example.net", Subject="Welcome", TextBody="x", Tag="welcome")
        postmark.emails.send(From="app@compat.example", To="b@example.net", Subject="Reset", TextBody="x", Tag="reset")
        assert [m.Subject for m in postmark.messages.outbound.all(count=10, tag="welcome")] == ["Welcome"]
        assert [m.Subject for m in postmark.messages.outbound.all(count=10, recipient="b@example.net")] == ["Reset"]
        assert len(postmark.messages.outbound.all(count=10, status="queued")) == 2


class TestPostmarkerServer:
    def test_get_and_edit(self, postmark: PostmarkClient) -> None:
        server = postmark.server.get()
        assert server.Name == "Compat"
        assert server.SmtpApiActivated is False
        edited = postmark.server.edit(SmtpApiActivated=True, Color="Red")
        assert edited["SmtpApiActivated"] is True
        assert postmark.server.get().Color == "red"


class TestPostmarkerSendersAndDomains:
    def test_senders(self, postmark: PostmarkClient) -> None:
        [sender] = postmark.senders.all()
        assert sender.EmailAddress == "app@compat.example"
        assert sender.Confirmed is True
        details = postmark.senders.get(sender.ID)
        assert details.Name == "App"
        postmark.senders.edit(sender.ID, Name="Renamed")
        assert postmark.senders.get(sender.ID).Name == "Renamed"
        postmark.senders.delete(sender.ID)
        assert postmark.senders.all() == []

    def test_domains(self, postmark: PostmarkClient) -> None:
        domain = postmark.domains.create(Name="compat-domain.example")
        assert domain.Name == "compat-domain.example"
        assert [d.Name for d in postmark.domains.all()] == ["compat-domain.example"]
        postmark.domains.edit(domain.ID, ReturnPathDomain="pm.compat-domain.example")
        assert postmark.domains.get(domain.ID).ReturnPathDomain == "pm.compat-domain.example"
        sent = postmark.emails.send(From="anyone@compat-domain.example", To="x@example.net", Subject="x", TextBody="x")
        assert sent["ErrorCode"] == 0
        assert "removed" in postmark.domains.delete(domain.ID)
        with pytest.raises(ClientError) as caught:
            postmark.emails.send(From="anyone@compat-domain.example", To="x@example.net", Subject="x", TextBody="x")
        assert caught.value.error_code == 400


class TestPostmarkerBounces:
    def test_list_get_dump_activate_and_stats(self, postmark: PostmarkClient, settings: Settings) -> None:
        sent = postmark.emails.send(From="app@compat.example", To="gone@example.net", Subject="x", TextBody="x", Tag="t")
        add_bounce(settings, postmark.server.get().ID, BounceType.HARD_BOUNCE, "gone@example.net", sent["MessageID"])
        [bounce] = postmark.bounces.all(count=10)
        assert bounce.Type == "HardBounce"
        assert bounce.Inactive is True
        assert bounce.MessageID == sent["MessageID"]
        assert postmark.bounces.get(bounce.ID).Email == "gone@example.net"
        assert bounce.dump == "raw"
        stats = postmark.bounces.deliverystats
        assert stats["InactiveMails"] == 1
        assert stats["Bounces"][0] == {"Name": "All", "Count": 1}
        with pytest.raises(ClientError) as caught:
            postmark.emails.send(From="app@compat.example", To="gone@example.net", Subject="x", TextBody="x")
        assert caught.value.error_code == 406
        assert bounce.activate() == "OK"
        assert postmark.bounces.get(bounce.ID).Inactive is False
        assert postmark.bounces.tags == ["t"]


class TestPostmarkerGenericCalls:
    """postmarker 1.0 has no managers for these; its generic `call` sends them as the client would."""

    def test_webhooks(self, postmark: PostmarkClient) -> None:
        created = postmark.call("POST", "/webhooks", data={"Url": "https://example.com/hook", "Triggers": {"Bounce": {"Enabled": True}}})
        assert created["Triggers"]["Bounce"]["Enabled"] is True
        assert [w["ID"] for w in postmark.call("GET", "/webhooks", messageStream="outbound")["Webhooks"]] == [created["ID"]]
        edited = postmark.call("PUT", f"/webhooks/{created['ID']}", data={"Url": "https://example.com/other"})
        assert edited["Url"] == "https://example.com/other"
        assert postmark.call("DELETE", f"/webhooks/{created['ID']}")["ErrorCode"] == 0

    def test_suppressions(self, postmark: PostmarkClient) -> None:
        added = postmark.call(
            "POST", "/message-streams/outbound/suppressions", data={"Suppressions": [{"EmailAddress": "quiet@example.net"}]}
        )
        assert added["Suppressions"][0]["Status"] == "Suppressed"
        dump = postmark.call("GET", "/message-streams/outbound/suppressions/dump")
        assert [s["EmailAddress"] for s in dump["Suppressions"]] == ["quiet@example.net"]
        with pytest.raises(ClientError) as caught:
            postmark.emails.send(From="app@compat.example", To="quiet@example.net", Subject="x", TextBody="x")
        assert caught.value.error_code == 406  # the 406's extra InactiveRecipients key changes nothing for postmarker
        [refused] = postmark.emails.send_batch({"From": "app@compat.example", "To": "quiet@example.net", "Subject": "x", "TextBody": "x"})
        assert refused["ErrorCode"] == 406
        assert [(i["Email"], i["Reason"]) for i in refused["InactiveRecipients"]] == [("quiet@example.net", "ManualSuppression")]
        removed = postmark.call(
            "POST", "/message-streams/outbound/suppressions/delete", data={"Suppressions": [{"EmailAddress": "quiet@example.net"}]}
        )
        assert removed["Suppressions"][0]["Status"] == "Deleted"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SinkHandler, int]]:
    """A sink that keeps what it receives (this module reads the delivered messages)."""
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def received_parts(data: bytes) -> dict[str, str]:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    found = {"subject": str(parsed["Subject"]), "to": str(parsed["To"])}
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html") and isinstance(part, EmailMessage):
            found[part.get_content_type()] = str(part.get_content()).replace("\r\n", "\n")
    return found


LAYOUT_HTML = (
    "<html><head><style>td { padding: 4px; } .brand { color: #e2571e; }</style></head>"
    '<body><p class="brand">{{ company }}</p>{{{ @content }}}</body></html>'
)
RECEIPT_HTML = "<p>Hi {{ name }},</p><table>{{#each items}}<tr><td>{{ description }}</td><td>{{ amount }}</td></tr>{{/each}}</table>"
RECEIPT_MODEL = {
    "company": "Acme",
    "name": "<Ann>",
    "items": [{"description": "Pen", "amount": "$3"}, {"description": "Ink <blue>", "amount": "$7"}],
}


class TestPostmarkerTemplates:
    """postmarker's `templates` manager has no TemplateType or LayoutTemplate: those go through its generic `call`."""

    def test_layout_template_validate_and_send_by_alias_and_id(
        self, postmark: PostmarkClient, settings: Settings, smtp_sink: tuple[SinkHandler, int]
    ) -> None:
        layout = postmark.call(
            "POST",
            "/templates/",
            data={
                "Name": "Brand",
                "Alias": "brand",
                "TemplateType": "Layout",
                "HtmlBody": LAYOUT_HTML,
                "TextBody": "{{ company }}\n{{{ @content }}}",
            },
        )
        assert layout["TemplateType"] == "Layout"
        template = postmark.templates.create(
            Name="Receipt", Subject="Receipt for {{ name }}", HtmlBody=RECEIPT_HTML, TextBody="Hi {{ name }}", Alias="receipt"
        )
        postmark.call("PUT", f"/templates/{template.TemplateId}", data={"LayoutTemplate": "brand"})
        assert postmark.templates.get(template.TemplateId).LayoutTemplate == "brand"
        assert [t.Alias for t in postmark.templates.all()] == ["brand", "receipt"]

        validation = postmark.templates.validate(Subject="Receipt for {{ name }}", HtmlBody=RECEIPT_HTML, TestRenderModel={"name": "Ann"})
        assert validation["AllContentIsValid"] is True
        assert validation["SuggestedTemplateModel"]["items"] == [{"description": "description_Value", "amount": "amount_Value"}]
        assert validation["Subject"]["RenderedContent"] == "Receipt for Ann"

        by_alias = postmark.emails.send_with_template(
            TemplateAlias="receipt", TemplateModel=RECEIPT_MODEL, From="App <app@compat.example>", To="ann@example.net", Tag="receipt"
        )
        by_id = postmark.emails.send_with_template(
            TemplateId=template.TemplateId, TemplateModel=RECEIPT_MODEL, From="app@compat.example", To="bob@example.net"
        )
        assert by_alias["ErrorCode"] == by_id["ErrorCode"] == 0
        assert postmark.messages.outbound.get(by_alias["MessageID"]).Subject == "Receipt for <Ann>"

        assert deliver_queued(settings, smtp_sink[1]) == 2
        received = {received_parts(r.data)["to"]: received_parts(r.data) for r in smtp_sink[0].received}
        ann = received["ann@example.net"]
        assert ann["subject"] == "Receipt for <Ann>"
        assert "<p>Hi &lt;Ann&gt;,</p>" in ann["text/html"]
        assert '<td style="padding: 4px;">Pen</td>' in ann["text/html"]
        assert '<td style="padding: 4px;">Ink &lt;blue&gt;</td>' in ann["text/html"]
        assert '<p class="brand" style="color: #e2571e;">Acme</p>' in ann["text/html"]
        assert ann["text/plain"].strip() == "Acme\nHi <Ann>"
        assert received["bob@example.net"]["subject"] == "Receipt for <Ann>"

    def test_batch_by_alias_and_id(self, postmark: PostmarkClient, settings: Settings, smtp_sink: tuple[SinkHandler, int]) -> None:
        template = postmark.templates.create(Name="Hello", Subject="Hello {{ name }}", TextBody="Hi {{ name }}", Alias="hello")
        results = postmark.emails.send_template_batch(
            {"From": "app@compat.example", "To": "a@example.net", "TemplateAlias": "hello", "TemplateModel": {"name": "A"}},
            {"From": "app@compat.example", "To": "b@example.net", "TemplateId": template.TemplateId, "TemplateModel": {"name": "B"}},
            {"From": "app@compat.example", "To": "c@example.net", "TemplateAlias": "missing", "TemplateModel": {}},
        )
        assert [r["ErrorCode"] for r in results] == [0, 0, 1101]
        assert deliver_queued(settings, smtp_sink[1]) == 2
        subjects = sorted(received_parts(r.data)["subject"] for r in smtp_sink[0].received)
        assert subjects == ["Hello A", "Hello B"]

    def test_edit_delete_and_errors(self, postmark: PostmarkClient) -> None:
        template = postmark.templates.create(Name="T", Subject="S", TextBody="x")
        postmark.templates.edit(template.TemplateId, Name="T2")
        assert postmark.templates.get(template.TemplateId).Name == "T2"
        assert "removed" in template.delete()
        assert postmark.templates.get(template.TemplateId).Active is False
        with pytest.raises(ClientError) as caught:
            postmark.emails.send_with_template(
                TemplateId=template.TemplateId, TemplateModel={}, From="app@compat.example", To="x@example.net"
            )
        assert caught.value.error_code == 1101
        with pytest.raises(ClientError) as caught:
            postmark.templates.create(Name="Bad", Subject="{{#each x}}", TextBody="x")
        assert caught.value.error_code == 1122


class TestPostmarkerInbound:
    def test_inbound_messages_and_rules(self, postmark: PostmarkClient, settings: Settings, mx_port: int, receiver: Receiver) -> None:
        address = postmark.server.edit(InboundHookUrl=receiver.url)["InboundAddress"]
        rule = postmark.triggers.inboundrules.create("offers.example")
        assert rule.Rule == "offers.example"
        assert [r.Rule for r in postmark.triggers.inboundrules.all()] == ["offers.example"]
        blocked = send_inbound(mx_port, to=address, sender="deals@offers.example", subject="Offer")
        receiver.statuses.append(403)
        failed = send_inbound(mx_port, to=address, subject="Ticket")
        post_webhooks(settings)
        assert {m.MessageID: m.Status for m in postmark.messages.inbound.all(count=10)} == {blocked: "Blocked", failed: "Failed"}
        assert [m.MessageID for m in postmark.messages.inbound.all(count=10, status="blocked")] == [blocked]
        message = postmark.messages.inbound.get(blocked)
        assert message.Subject == "Offer"
        assert message["Received"].startswith("from mx.sender.example")
        assert message.bypass()["ErrorCode"] == 0
        assert postmark.messages.inbound.get(failed).retry()["ErrorCode"] == 0
        post_webhooks(settings)
        assert {h.json["MessageID"] for h in receiver.hooks} == {blocked, failed}
        assert "removed" in rule.delete()
        assert postmark.triggers.inboundrules.all() == []
