"""Postmark's official Node client (postmark.js 5.1.0), unchanged, against Postgate: the journeys a team relies on.

Assertions read the client's parsed results by the field names of its TypeScript models, and
`missing_fields` checks every result against the required fields those models declare (read from
`node_modules/postmark/dist/client/models/**/*.d.ts`), so a shape difference shows up here.
"""

from __future__ import annotations

import base64
import email
import re
from email import policy
from email.message import EmailMessage
from typing import ClassVar

import pytest

from api_service.config import Settings
from shared.constants import BounceType
from tests.api.conftest import Receiver, receiver
from tests.api.core.dns_server import Zone
from tests.compat.factories import Sink, add_bounce, deliver_queued, post_webhooks, run_data_removals, send_inbound, unconfirm_sender
from tests.compat.js_client import PostmarkJs, PostmarkJsError, PostmarkJsServer, missing_fields, required_fields

__all__ = ["receiver"]
pytestmark = pytest.mark.slow

SENDER = "app@compat.example"

# postmark.js reads a partial-inactive 200 with this pattern (`InactiveRecipientsError.inactiveRecipientsPatterns`).
PARTIAL_INACTIVE = re.compile(r"these inactive addresses: (.+?)\.?$")


def send(js: PostmarkJsServer, to: str, **fields: object) -> dict[str, object]:
    result: dict[str, object] = js.server("sendEmail", {"From": SENDER, "To": to, "Subject": "x", "TextBody": "x", **fields})
    return result


def hard_bounce(js: PostmarkJsServer, settings: Settings, email: str) -> None:
    sent = send(js, email, Tag="t")
    add_bounce(settings, js.id, BounceType.HARD_BOUNCE, email, str(sent["MessageID"]))


class TestSendEmail:
    def test_send_with_attachment_and_read_it_back(self, js_server: PostmarkJsServer) -> None:
        result = js_server.server(
            "sendEmail",
            {
                "From": f"App <{SENDER}>",
                "To": "user@example.net",
                "Cc": "copy@example.net",
                "Subject": "Invoice",
                "HtmlBody": "<p>Attached</p>",
                "TextBody": "Attached",
                "Tag": "invoice",
                "Metadata": {"order": "42"},
                "Headers": [{"Name": "X-Order", "Value": "42"}],
                "Attachments": [
                    {
                        "Name": "invoice.txt",
                        "Content": base64.b64encode(b"total: 1").decode(),
                        "ContentType": "text/plain",
                        "ContentID": None,
                    }
                ],
                "TrackLinks": "None",
            },
        )
        assert missing_fields(result, "MessageSendingResponse") == set()
        assert result["ErrorCode"] == 0
        assert result["Message"] == "OK"
        assert result["To"] == "user@example.net"
        assert result["SubmittedAt"]
        details = js_server.server("getOutboundMessageDetails", result["MessageID"])
        assert missing_fields(details, "OutboundMessageDetails") == set()
        assert details["MessageID"] == result["MessageID"]
        assert details["Subject"] == "Invoice"
        assert details["Tag"] == "invoice"
        assert details["Metadata"] == {"order": "42"}
        assert details["Attachments"] == ["invoice.txt"]
        assert details["TextBody"].strip() == "Attached"
        assert [r["Email"] for r in details["To"]] == ["user@example.net"]
        assert [r["Email"] for r in details["Cc"]] == ["copy@example.net"]
        assert sorted(details["Recipients"]) == ["copy@example.net", "user@example.net"]
        assert details["MessageStream"] == "outbound"
        assert details["Sandboxed"] is False
        assert isinstance(details["MessageEvents"], list)
        assert "X-Order: 42" in details["Body"]
        dump = js_server.server("getOutboundMessageDump", result["MessageID"])
        assert missing_fields(dump, "OutboundMessageDump") == set()
        assert "X-Order: 42" in dump["Body"]

    def test_batch_reports_each_message(self, js_server: PostmarkJsServer) -> None:
        results = js_server.server(
            "sendEmailBatch",
            [
                {"From": SENDER, "To": "a@example.net", "Subject": "A", "TextBody": "a"},
                {"From": "nobody@elsewhere.example", "To": "b@example.net", "Subject": "B", "TextBody": "b"},
            ],
        )
        assert [r["ErrorCode"] for r in results] == [0, 400]
        assert results[0]["To"] == "a@example.net"
        listed = js_server.server("getOutboundMessages", {"count": 10})
        assert missing_fields(listed, "OutboundMessages") == set()
        assert all(missing_fields(m, "OutboundMessage") == set() for m in listed["Messages"])
        assert listed["TotalCount"] == 1
        assert [m["Subject"] for m in listed["Messages"]] == ["A"]

    def test_test_token_validates_and_stores_nothing(self, js_server: PostmarkJsServer, postmark_js: PostmarkJs) -> None:
        result = postmark_js.call(
            "server", "POSTMARK_API_TEST", "sendEmail", {"From": SENDER, "To": "a@example.net", "Subject": "x", "TextBody": "x"}
        )
        assert result["ErrorCode"] == 0
        assert result["Message"] == "Test job accepted"
        assert result["MessageID"]
        with pytest.raises(PostmarkJsError) as caught:
            postmark_js.call("server", "POSTMARK_API_TEST", "sendEmail", {"From": SENDER, "To": "", "Subject": "x", "TextBody": "x"})
        assert caught.value.name == "InvalidEmailRequestError"
        assert js_server.server("getOutboundMessages")["TotalCount"] == 0

    def test_outbound_messages_filters(self, js_server: PostmarkJsServer) -> None:
        send(js_server, "a@example.net", Subject="Welcome", Tag="welcome", Metadata={"plan": "pro"})
        send(js_server, "b@example.net", Subject="Reset", Tag="reset")
        assert [m["Subject"] for m in js_server.server("getOutboundMessages", {"count": 10, "tag": "welcome"})["Messages"]] == ["Welcome"]
        by_recipient = js_server.server("getOutboundMessages", {"count": 10, "recipient": "b@example.net"})
        assert [m["Subject"] for m in by_recipient["Messages"]] == ["Reset"]
        by_metadata = js_server.server("getOutboundMessages", {"count": 10, "metadata_plan": "pro"})
        assert [m["Subject"] for m in by_metadata["Messages"]] == ["Welcome"]
        queued = js_server.server("getOutboundMessages", {"count": 10, "offset": 0, "status": "queued", "fromEmail": SENDER})
        assert queued["TotalCount"] == 2
        assert {m["Status"] for m in queued["Messages"]} == {"Queued"}


class TestMessageEvents:
    def test_delivered_and_bounced_recipients_read_back_as_events(
        self, js_server: PostmarkJsServer, settings: Settings, smtp_sink: int
    ) -> None:
        sent = send(js_server, "ok@example.net, hard@example.net")
        assert deliver_queued(settings, smtp_sink) > 0
        details = js_server.server("getOutboundMessageDetails", sent["MessageID"])
        assert details["Status"] == "Sent"
        events = {event["Recipient"]: event for event in details["MessageEvents"]}
        assert sorted(events) == ["hard@example.net", "ok@example.net"]
        assert all(missing_fields(event, "MessageEvent") == set() for event in events.values())
        delivered = events["ok@example.net"]
        assert delivered["Type"] == "Delivered"
        assert {"DeliveryMessage", "DestinationServer", "DestinationIP"} <= delivered["Details"].keys()  # DeliveryEvent
        assert "250 2.0.0" in delivered["Details"]["DeliveryMessage"]
        bounced = events["hard@example.net"]
        assert bounced["Type"] == "Bounced"
        assert {"Summary", "BounceID"} <= bounced["Details"].keys()  # BounceEvent
        # postmark.js types BounceID as a number; Postmark sends a string ("374814878" in its docs) and
        # so does Postgate. The client passes it through, and getBounce takes either.
        bounce = js_server.server("getBounce", bounced["Details"]["BounceID"])
        assert (bounce["Email"], bounce["MessageID"], bounce["Type"]) == ("hard@example.net", sent["MessageID"], "HardBounce")
        assert js_server.server("getBounces", {"messageID": sent["MessageID"]})["TotalCount"] == 1
        assert js_server.server("getOutboundMessages", {"status": "sent"})["TotalCount"] == 1


class TestSendErrors:
    def test_invalid_request_is_invalid_email_request_error(self, js_server: PostmarkJsServer) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            send(js_server, "")
        assert (caught.value.name, caught.value.status_code, caught.value.code) == ("InvalidEmailRequestError", 422, 300)

    def test_unknown_sender_is_api_input_error_400(self, js_server: PostmarkJsServer) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            js_server.server("sendEmail", {"From": "nobody@elsewhere.example", "To": "a@example.net", "Subject": "x", "TextBody": "x"})
        assert (caught.value.name, caught.value.status_code, caught.value.code) == ("ApiInputError", 422, 400)

    def test_bad_token_is_invalid_api_key_error(self, postmark_js: PostmarkJs) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            postmark_js.call("server", "not-a-token", "getServer")
        assert (caught.value.name, caught.value.status_code, caught.value.code) == ("InvalidAPIKeyError", 401, 10)

    def test_server_token_on_an_account_endpoint_is_invalid_api_key_error(
        self, js_server: PostmarkJsServer, postmark_js: PostmarkJs
    ) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            postmark_js.call("account", js_server.token, "getServers")
        assert (caught.value.name, caught.value.status_code, caught.value.code) == ("InvalidAPIKeyError", 401, 10)

    def test_all_recipients_inactive_is_inactive_recipients_error_with_recipients(
        self, js_server: PostmarkJsServer, settings: Settings
    ) -> None:
        hard_bounce(js_server, settings, "gone@example.net")
        js_server.server("createSuppressions", "outbound", {"Suppressions": [{"EmailAddress": "quiet@example.net"}]})
        with pytest.raises(PostmarkJsError) as caught:
            send(js_server, "gone@example.net, quiet@example.net")
        assert (caught.value.name, caught.value.status_code, caught.value.code) == ("InactiveRecipientsError", 422, 406)
        assert caught.value.recipients == ["gone@example.net", "quiet@example.net"]

    def test_some_recipients_inactive_is_ok_and_names_them(self, js_server: PostmarkJsServer, settings: Settings) -> None:
        hard_bounce(js_server, settings, "gone@example.net")
        result = send(js_server, "gone@example.net, live@example.net")
        assert result["ErrorCode"] == 0
        found = PARTIAL_INACTIVE.search(str(result["Message"]))
        assert found is not None
        assert found.group(1).split(", ") == ["gone@example.net"]

    def test_inactive_recipient_in_a_batch_fails_only_that_item(self, js_server: PostmarkJsServer, settings: Settings) -> None:
        hard_bounce(js_server, settings, "gone@example.net")
        results = js_server.server(
            "sendEmailBatch",
            [
                {"From": SENDER, "To": "gone@example.net", "Subject": "A", "TextBody": "a"},
                {"From": SENDER, "To": "live@example.net", "Subject": "B", "TextBody": "b"},
            ],
        )
        assert [r["ErrorCode"] for r in results] == [406, 0]
        assert "Found inactive addresses: gone@example.net. Inactive" in results[0]["Message"]
        # Beyond Postmark, readable without the Message: postmark.js hands the extra key through untouched.
        [inactive] = results[0]["InactiveRecipients"]
        assert (inactive["Email"], inactive["Reason"]) == ("gone@example.net", "HardBounce")
        assert "InactiveRecipients" not in results[1]


class TestServer:
    def test_get_and_edit(self, js_server: PostmarkJsServer) -> None:
        server = js_server.server("getServer")
        assert missing_fields(server, "Server") == set()
        assert server["ID"] == js_server.id
        assert server["Name"] == "Compat"
        assert server["ApiTokens"] == [js_server.token]
        assert server["SmtpApiActivated"] is False
        assert server["DeliveryType"] == "Live"
        assert server["TrackLinks"] == "None"
        edited = js_server.server("editServer", {"SmtpApiActivated": True, "Color": "Red", "TrackLinks": "HtmlOnly"})
        assert missing_fields(edited, "Server") == set()
        assert edited["SmtpApiActivated"] is True
        assert edited["TrackLinks"] == "HtmlOnly"
        assert js_server.server("getServer")["Color"] == "red"


class TestServers:
    def test_create_list_get_edit_delete(self, js_server: PostmarkJsServer) -> None:
        created = js_server.account("createServer", {"Name": "Second", "Color": "Blue", "DeliveryType": "Sandbox"})
        assert missing_fields(created, "Server") == set()
        assert created["Name"] == "Second"
        assert created["DeliveryType"] == "Sandbox"
        assert len(created["ApiTokens"]) == 1
        listed = js_server.account("getServers", {"count": 10, "offset": 0})
        assert missing_fields(listed, "Servers") == set()
        assert all(missing_fields(s, "Server") == set() for s in listed["Servers"])
        assert listed["TotalCount"] == 2
        assert sorted(s["Name"] for s in listed["Servers"]) == ["Compat", "Second"]
        assert [s["Name"] for s in js_server.account("getServers", {"name": "Sec"})["Servers"]] == ["Second"]
        assert js_server.account("getServer", created["ID"])["Color"] == "blue"
        assert js_server.account("editServer", created["ID"], {"Name": "Renamed"})["Name"] == "Renamed"
        removed = js_server.account("deleteServer", created["ID"])
        assert missing_fields(removed, "DefaultResponse") == set()
        assert removed["ErrorCode"] == 0
        assert js_server.account("getServers")["TotalCount"] == 1

    def test_unknown_server_is_a_postmark_error_404(self, js_server: PostmarkJsServer) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            js_server.account("getServer", 999999)
        assert (caught.value.name, caught.value.status_code) == ("PostmarkError", 404)
        assert caught.value.code != 0


class TestSenders:
    def test_create_list_get_edit_delete(self, js_server: PostmarkJsServer) -> None:
        created = js_server.account(
            "createSenderSignature", {"FromEmail": "ops@compat.example", "Name": "Ops", "ReplyToEmail": "help@compat.example"}
        )
        assert missing_fields(created, "SignatureDetails") == set()
        assert created["EmailAddress"] == "ops@compat.example"
        assert created["Domain"] == "compat.example"
        assert created["Confirmed"] is True
        listed = js_server.account("getSenderSignatures", {"count": 10, "offset": 0})
        assert missing_fields(listed, "Signatures") == set()
        assert all(missing_fields(s, "Signature") == set() for s in listed["SenderSignatures"])
        assert listed["TotalCount"] == 2
        assert sorted(s["EmailAddress"] for s in listed["SenderSignatures"]) == [SENDER, "ops@compat.example"]
        details = js_server.account("getSenderSignature", created["ID"])
        assert missing_fields(details, "SignatureDetails") == set()
        assert details["Name"] == "Ops"
        assert details["ReplyToEmailAddress"] == "help@compat.example"
        edited = js_server.account("editSenderSignature", created["ID"], {"Name": "Operations"})
        assert missing_fields(edited, "SignatureDetails") == set()
        assert edited["Name"] == "Operations"
        assert js_server.account("getSenderSignature", created["ID"])["Name"] == "Operations"
        assert js_server.account("deleteSenderSignature", created["ID"])["ErrorCode"] == 0
        assert [s["EmailAddress"] for s in js_server.account("getSenderSignatures")["SenderSignatures"]] == [SENDER]


class TestDomains:
    def test_create_list_get_edit_verify_delete(self, js_server: PostmarkJsServer) -> None:
        created = js_server.account("createDomain", {"Name": "compat-domain.example"})
        assert missing_fields(created, "DomainDetails") == set()
        assert created["Name"] == "compat-domain.example"
        assert created["DKIMHost"]
        listed = js_server.account("getDomains", {"count": 10, "offset": 0})
        assert missing_fields(listed, "Domains") == set()
        assert all(missing_fields(d, "Domain") == set() for d in listed["Domains"])
        assert listed["TotalCount"] == 1
        assert [d["Name"] for d in listed["Domains"]] == ["compat-domain.example"]
        edited = js_server.account("editDomain", created["ID"], {"ReturnPathDomain": "pm.compat-domain.example"})
        assert missing_fields(edited, "DomainDetails") == set()
        assert edited["ReturnPathDomain"] == "pm.compat-domain.example"
        fetched = js_server.account("getDomain", created["ID"])
        assert missing_fields(fetched, "DomainDetails") == set()
        assert fetched["ReturnPathDomain"] == "pm.compat-domain.example"
        verified = js_server.account("verifyDomainDKIM", created["ID"])
        assert missing_fields(verified, "DomainDetails") == set()
        assert verified["ID"] == created["ID"]
        assert isinstance(verified["DKIMVerified"], bool)
        assert send(js_server, "x@example.net", From="anyone@compat-domain.example")["ErrorCode"] == 0
        assert js_server.account("deleteDomain", created["ID"])["ErrorCode"] == 0
        with pytest.raises(PostmarkJsError) as caught:
            send(js_server, "x@example.net", From="anyone@compat-domain.example")
        assert caught.value.code == 400

    def test_rotate_the_dkim_key_and_verify_it_in_dns(self, js_server: PostmarkJsServer, compat_dns: tuple[Zone, str]) -> None:
        created = js_server.account("createDomain", {"Name": "rotate.compat.example"})
        rotated = js_server.account("rotateDomainDKIM", created["ID"])
        assert missing_fields(rotated, "DomainDetails") == set()
        assert rotated["DKIMUpdateStatus"] == "Pending"
        assert rotated["DKIMHost"] == created["DKIMHost"]
        compat_dns[0].txt(rotated["DKIMPendingHost"], rotated["DKIMPendingTextValue"])
        verified = js_server.account("verifyDomainDKIM", created["ID"])
        assert (verified["DKIMUpdateStatus"], verified["DKIMHost"]) == ("Regular", rotated["DKIMPendingHost"])
        assert verified["DKIMRevokedHost"] == created["DKIMHost"]
        assert verified["SafeToRemoveRevokedKeyFromDNS"] is False
        compat_dns[0].cname("pm.rotate.compat.example", "bounces.localhost")
        js_server.account("editDomain", created["ID"], {"ReturnPathDomain": "pm.rotate.compat.example"})
        assert js_server.account("verifyDomainReturnPath", created["ID"])["ReturnPathDomainVerified"] is True
        assert isinstance(js_server.account("verifyDomainSPF", created["ID"])["SPFVerified"], bool)


class TestSenderActions:
    def test_resend_confirmation_to_an_unconfirmed_signature_only(self, js_server: PostmarkJsServer, settings: Settings) -> None:
        created = js_server.account("createSenderSignature", {"FromEmail": "later@compat.example", "Name": "Later"})
        with pytest.raises(PostmarkJsError) as caught:
            js_server.account("resendSenderSignatureConfirmation", created["ID"])
        assert (caught.value.name, caught.value.code) == ("ApiInputError", 506)
        unconfirm_sender(settings, created["ID"])
        resent = js_server.account("resendSenderSignatureConfirmation", created["ID"])
        assert missing_fields(resent, "DefaultResponse") == set()
        assert resent["ErrorCode"] == 0
        assert js_server.account("getSenderSignature", created["ID"])["Confirmed"] is False

    def test_request_new_dkim_and_verify_spf(self, js_server: PostmarkJsServer) -> None:
        js_server.account("createDomain", {"Name": "compat.example"})
        [sender] = js_server.account("getSenderSignatures")["SenderSignatures"]
        renewed = js_server.account("requestNewDKIMForSenderSignature", sender["ID"])
        assert missing_fields(renewed, "SignatureDetails") == set()
        assert renewed["DKIMUpdateStatus"] == "Pending"
        assert renewed["DKIMPendingHost"].endswith("._domainkey.compat.example")
        checked = js_server.account("verifySenderSignatureSPF", sender["ID"])
        assert missing_fields(checked, "SignatureDetails") == set()
        assert checked["SPFVerified"] is False  # the tests' DNS has no SPF record for it


class TestDataRemoval:
    def test_request_and_follow_it_to_done(self, js_server: PostmarkJsServer, settings: Settings) -> None:
        send(js_server, "forget.me@example.net")
        requested = js_server.account(
            "requestDataRemoval",
            {"RequestedBy": "privacy@compat.example", "RequestedFor": "forget.me@example.net", "NotifyWhenCompleted": False},
        )
        assert missing_fields(requested, "DataRemovalStatus") == set()
        assert requested["Status"] == "Pending"
        run_data_removals(settings)
        status = js_server.account("getDataRemovalStatus", requested["ID"])
        assert missing_fields(status, "DataRemovalStatus") == set()
        assert (status["ID"], status["Status"]) == (requested["ID"], "Done")
        assert js_server.server("getOutboundMessages", {"count": 10, "offset": 0})["TotalCount"] == 0

    def test_unknown_request_is_an_api_input_error(self, js_server: PostmarkJsServer) -> None:
        with pytest.raises(PostmarkJsError) as caught:
            js_server.account("getDataRemovalStatus", 999)
        assert (caught.value.status_code, caught.value.code) == (404, 1301)


class TestBounces:
    def test_list_get_dump_activate_and_stats(self, js_server: PostmarkJsServer, settings: Settings) -> None:
        sent = send(js_server, "gone@example.net", Tag="t")
        add_bounce(settings, js_server.id, BounceType.HARD_BOUNCE, "gone@example.net", str(sent["MessageID"]))
        listed = js_server.server("getBounces", {"count": 10, "offset": 0, "type": "HardBounce", "inactive": True})
        assert missing_fields(listed, "Bounces") == set()
        assert listed["TotalCount"] == 1
        [bounce] = listed["Bounces"]
        assert missing_fields(bounce, "Bounce") == set()
        assert bounce["RecordType"] == "Bounce"
        assert (bounce["Type"], bounce["TypeCode"]) == ("HardBounce", 1)
        assert bounce["Inactive"] is True
        assert bounce["CanActivate"] is True
        assert bounce["MessageID"] == sent["MessageID"]
        assert bounce["ServerID"] == js_server.id
        assert bounce["MessageStream"] == "outbound"
        assert js_server.server("getBounces", {"emailFilter": "nobody"})["TotalCount"] == 0
        single = js_server.server("getBounce", bounce["ID"])
        assert missing_fields(single, "Bounce") == set()
        assert single["Email"] == "gone@example.net"
        assert js_server.server("getBounceDump", bounce["ID"]) == {"Body": "raw"}
        stats = js_server.server("getDeliveryStatistics")
        assert missing_fields(stats, "DeliveryStatistics") == set()
        assert all(missing_fields(b, "BounceMetric") == set() for b in stats["Bounces"])
        assert stats["InactiveMails"] == 1
        assert stats["Bounces"][0] == {"Name": "All", "Count": 1}
        assert {"Type": "HardBounce", "Count": 1} in [{"Type": b.get("Type"), "Count": b["Count"]} for b in stats["Bounces"][1:]]
        with pytest.raises(PostmarkJsError) as caught:
            send(js_server, "gone@example.net")
        assert caught.value.recipients == ["gone@example.net"]
        activated = js_server.server("activateBounce", bounce["ID"])
        assert missing_fields(activated, "BounceActivationResponse") == set()
        assert missing_fields(activated["Bounce"], "Bounce") == set()
        assert activated["Message"] == "OK"
        assert activated["Bounce"]["Inactive"] is False
        assert js_server.server("getBounce", bounce["ID"])["Inactive"] is False
        assert send(js_server, "gone@example.net")["ErrorCode"] == 0


class TestWebhooks:
    def test_create_list_get_edit_delete(self, js_server: PostmarkJsServer) -> None:
        created = js_server.server(
            "createWebhook",
            {
                "Url": "https://example.com/hook",
                "MessageStream": "outbound",
                "HttpAuth": {"Username": "u", "Password": "p"},
                "HttpHeaders": [{"Name": "X-Secret", "Value": "s"}],
                "Triggers": {"Bounce": {"Enabled": True, "IncludeContent": True}, "Delivery": {"Enabled": True}},
            },
        )
        assert missing_fields(created, "Webhook") == set()
        assert created["Url"] == "https://example.com/hook"
        assert created["MessageStream"] == "outbound"
        assert created["HttpAuth"] == {"Username": "u", "Password": "p"}
        assert created["HttpHeaders"] == [{"Name": "X-Secret", "Value": "s"}]
        assert created["Triggers"]["Bounce"] == {"Enabled": True, "IncludeContent": True}
        assert created["Triggers"]["Open"]["Enabled"] is False
        assert set(created["Triggers"]) == {"Open", "Click", "Delivery", "Bounce", "SpamComplaint", "SubscriptionChange"}
        listed = js_server.server("getWebhooks", {"messageStream": "outbound"})
        assert missing_fields(listed, "Webhooks") == set()
        assert [w["ID"] for w in listed["Webhooks"]] == [created["ID"]]
        assert [w["ID"] for w in js_server.server("getWebhooks")["Webhooks"]] == [created["ID"]]
        assert js_server.server("getWebhook", created["ID"])["Triggers"]["Delivery"]["Enabled"] is True
        edited = js_server.server(
            "editWebhook", created["ID"], {"Url": "https://example.com/other", "Triggers": {"Open": {"Enabled": True}}}
        )
        assert missing_fields(edited, "Webhook") == set()
        assert edited["Url"] == "https://example.com/other"
        assert edited["Triggers"]["Open"]["Enabled"] is True
        assert edited["Triggers"]["Bounce"]["Enabled"] is True
        removed = js_server.server("deleteWebhook", created["ID"])
        assert missing_fields(removed, "DefaultResponse") == set()
        assert removed["ErrorCode"] == 0
        assert js_server.server("getWebhooks")["Webhooks"] == []


class TestSuppressions:
    def test_create_dump_and_delete(self, js_server: PostmarkJsServer) -> None:
        added = js_server.server("createSuppressions", "outbound", {"Suppressions": [{"EmailAddress": "quiet@example.net"}]})
        assert missing_fields(added, "SuppressionStatuses") == set()
        assert added["Suppressions"] == [{"EmailAddress": "quiet@example.net", "Status": "Suppressed", "Message": None}]
        dump = js_server.server("getSuppressions", "outbound")
        assert missing_fields(dump, "Suppressions") == set()
        [row] = dump["Suppressions"]
        assert missing_fields(row, "Suppression") == set()
        assert (row["EmailAddress"], row["SuppressionReason"], row["Origin"]) == ("quiet@example.net", "ManualSuppression", "Customer")
        assert row["CreatedAt"]
        assert js_server.server("getSuppressions", "outbound", {"suppressionReason": "HardBounce"})["Suppressions"] == []
        assert len(js_server.server("getSuppressions", "outbound", {"emailAddress": "quiet@example.net"})["Suppressions"]) == 1
        with pytest.raises(PostmarkJsError) as caught:
            send(js_server, "quiet@example.net")
        assert caught.value.name == "InactiveRecipientsError"
        assert caught.value.recipients == ["quiet@example.net"]
        removed = js_server.server("deleteSuppressions", "outbound", {"Suppressions": [{"EmailAddress": "quiet@example.net"}]})
        assert removed["Suppressions"][0]["Status"] == "Deleted"
        assert js_server.server("getSuppressions", "outbound")["Suppressions"] == []
        assert send(js_server, "quiet@example.net")["ErrorCode"] == 0


class TestInbound:
    def test_search_details_bypass_retry_and_rules(
        self, js_server: PostmarkJsServer, settings: Settings, mx_port: int, receiver: Receiver
    ) -> None:
        js = js_server
        address = js.server("editServer", {"InboundHookUrl": receiver.url})["InboundAddress"]
        local, _, domain = address.partition("@")
        rule = js.server("createInboundRuleTrigger", {"Rule": "offers.example"})
        assert missing_fields(rule, "InboundRule") == set()
        assert rule["Rule"] == "offers.example"
        rules = js.server("getInboundRuleTriggers", {"count": 10, "offset": 0})
        assert missing_fields(rules, "InboundRules") == set()
        assert rules["InboundRules"] == [rule]

        blocked = send_inbound(mx_port, to=f"{local}+ticket42@{domain}", sender="deals@offers.example", subject="Offer")
        receiver.statuses.append(403)
        failed = send_inbound(mx_port, to=address, subject="Ticket")
        post_webhooks(settings)
        listed = js.server("getInboundMessages", {"count": 10, "offset": 0})
        assert missing_fields(listed, "InboundMessages") == set()
        assert all(missing_fields(m, "InboundMessage") == set() for m in listed["InboundMessages"])
        assert {m["MessageID"]: m["Status"] for m in listed["InboundMessages"]} == {blocked: "Blocked", failed: "Failed"}
        by_hash = js.server("getInboundMessages", {"count": 10, "offset": 0, "mailboxHash": "ticket42"})["InboundMessages"]
        assert [m["MessageID"] for m in by_hash] == [blocked]
        by_status = js.server("getInboundMessages", {"count": 10, "offset": 0, "status": "failed"})["InboundMessages"]
        assert [m["MessageID"] for m in by_status] == [failed]
        details = js.server("getInboundMessageDetails", blocked)
        assert missing_fields(details, "InboundMessageDetails") == set()
        assert (details["MailboxHash"], details["FromFull"]["Email"]) == ("ticket42", "deals@offers.example")
        assert "offers.example" in details["BlockedReason"]

        assert js.server("bypassBlockedInboundMessage", blocked)["ErrorCode"] == 0
        assert js.server("retryInboundHookForMessage", failed)["ErrorCode"] == 0
        with pytest.raises(PostmarkJsError) as caught:
            js.server("bypassBlockedInboundMessage", blocked)
        assert caught.value.code == 702
        post_webhooks(settings)
        assert {h.json["MessageID"] for h in receiver.hooks} == {blocked, failed}
        assert {js.server("getInboundMessageDetails", m)["Status"] for m in (blocked, failed)} == {"Processed"}
        assert js.server("deleteInboundRuleTrigger", rule["ID"])["Message"] == "Rule offers.example removed."


class TestClientTypings:
    """The shape checks above are only as good as the reading of the client's `.d.ts` files."""

    @pytest.mark.usefixtures("postmark_js_driver")
    def test_required_fields_follow_extends_and_skip_optional_and_nested_members(self) -> None:
        assert {"ID", "Name", "SPFVerified", "DKIMHost", "EmailAddress", "ConfirmationPersonalNote"} <= required_fields("SignatureDetails")
        assert "Tag" not in required_fields("Bounce")
        assert {"ErrorCode", "Message", "MessageID", "SubmittedAt"} == required_fields("MessageSendingResponse")
        assert required_fields("Webhook") == {"ID", "Url", "MessageStream", "Triggers"}
        assert missing_fields({"ID": 1, "Name": "x"}, "Domain") == {"SPFVerified", "DKIMVerified", "WeakDKIM", "ReturnPathDomainVerified"}


class TestTemplates:
    """Issue 10's journey through postmark.js: a layout, a template using it, validate, send by alias and by id."""

    LAYOUT = (
        '<html><head><style>.brand { color: #e2571e }</style></head><body><p class="brand">{{ company }}</p>{{{ @content }}}</body></html>'
    )
    RECEIPT = "<p>Hi {{ name }},</p><ul>{{#each items}}<li>{{ description }}: {{ amount }}</li>{{/each}}</ul>"
    MODEL: ClassVar[dict[str, object]] = {
        "company": "Acme",
        "name": "<Ann>",
        "items": [{"description": "Pen", "amount": "$3"}, {"description": "Ink <blue>", "amount": "$7"}],
    }

    def test_layout_template_validate_send_single_and_batch(
        self, js_server: PostmarkJsServer, settings: Settings, recording_sink: tuple[Sink, int]
    ) -> None:
        layout = js_server.server(
            "createTemplate",
            {
                "Name": "Brand",
                "Alias": "brand",
                "TemplateType": "Layout",
                "HtmlBody": self.LAYOUT,
                "TextBody": "{{ company }}\n{{{ @content }}}",
            },
        )
        assert layout["TemplateType"] == "Layout"
        assert missing_fields(layout, "TemplateInList") == set()
        created = js_server.server(
            "createTemplate",
            {
                "Name": "Receipt",
                "Alias": "receipt",
                "LayoutTemplate": "brand",
                "Subject": "Receipt for {{ name }}",
                "HtmlBody": self.RECEIPT,
                "TextBody": "Hi {{ name }}",
            },
        )
        fetched = js_server.server("getTemplate", created["TemplateId"])
        assert fetched["LayoutTemplate"] == "brand"
        assert missing_fields(fetched, "Template") == set()
        listed = js_server.server("getTemplates", {"count": 10, "offset": 0})
        assert sorted(t["Alias"] for t in listed["Templates"]) == ["brand", "receipt"]

        validation = js_server.server(
            "validateTemplate", {"Subject": "Receipt for {{ name }}", "HtmlBody": self.RECEIPT, "TestRenderModel": {"name": "Ann"}}
        )
        assert validation["AllContentIsValid"] is True
        assert validation["Subject"]["RenderedContent"] == "Receipt for Ann"
        assert validation["SuggestedTemplateModel"]["items"] == [{"description": "description_Value", "amount": "amount_Value"}]

        by_alias = js_server.server(
            "sendEmailWithTemplate", {"From": SENDER, "To": "ann@example.net", "TemplateAlias": "receipt", "TemplateModel": self.MODEL}
        )
        by_id = js_server.server(
            "sendEmailWithTemplate",
            {"From": SENDER, "To": "bob@example.net", "TemplateId": created["TemplateId"], "TemplateModel": self.MODEL},
        )
        batch = js_server.server(
            "sendEmailBatchWithTemplates",
            [
                {"From": SENDER, "To": "cat@example.net", "TemplateAlias": "receipt", "TemplateModel": self.MODEL},
                {"From": SENDER, "To": "dan@example.net", "TemplateId": created["TemplateId"], "TemplateModel": self.MODEL},
            ],
        )
        assert by_alias["ErrorCode"] == by_id["ErrorCode"] == 0
        assert [r["ErrorCode"] for r in batch] == [0, 0]

        sink, port = recording_sink
        assert deliver_queued(settings, port) == 4
        assert len(sink.received) == 4
        for rcpt_tos, data in sink.received:
            parsed = email.message_from_bytes(data, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            assert parsed["Subject"] == "Receipt for <Ann>", rcpt_tos
            html = parsed.get_body(preferencelist=("html",))
            assert html is not None
            content = html.get_content()
            assert "<p>Hi &lt;Ann&gt;,</p>" in content
            assert "<li>Ink &lt;blue&gt;: $7</li>" in content
            assert '<p class="brand" style="color: #e2571e;">Acme</p>' in content
