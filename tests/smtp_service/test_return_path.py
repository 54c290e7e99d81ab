"""A DSN mailed to the return-path address becomes a bounce on the right message."""

from __future__ import annotations

import smtplib
import uuid
from pathlib import Path

import httpx
import pytest

from api_service.bounces.verp import return_path
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway, SmtpServerHandle

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dsn"


def test_dsn_becomes_a_hard_bounce_and_suppresses(gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
    sent = httpx.post(
        f"{clean_live_api}/email",
        json={"From": "sender@example.com", "To": "gone@example.net", "Subject": "Hello", "TextBody": "x"},
        headers=smtp_server.headers,
    ).json()
    hex_id = sent["MessageID"].replace("-", "")
    dsn = (
        (FIXTURES / "postfix_user_unknown.eml")
        .read_bytes()
        .replace(b"{HEX}", hex_id.encode())
        .replace(b"{UUID}", sent["MessageID"].encode())
    )
    path = return_path(
        message_id=uuid.UUID(sent["MessageID"]), recipient="gone@example.net", domain="bounces.postgate.test", secret=ACCOUNT_TOKEN
    )
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as mta:
        refused = mta.sendmail("", [path], dsn.replace(b"\n", b"\r\n"))
        assert refused == {}
    [bounce] = httpx.get(f"{clean_live_api}/bounces?count=10&offset=0", headers=smtp_server.headers).json()["Bounces"]
    assert bounce["Type"] == "HardBounce"
    assert bounce["MessageID"] == sent["MessageID"]
    assert bounce["Email"] == "gone@example.net"
    assert "User unknown" in bounce["Details"]
    again = httpx.post(
        f"{clean_live_api}/email",
        json={"From": "sender@example.com", "To": "gone@example.net", "Subject": "Hello", "TextBody": "x"},
        headers=smtp_server.headers,
    )
    assert again.json()["ErrorCode"] == 406


def test_forged_dsn_records_nothing(gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
    """What an attacker who saw the Message-ID could do: a DSN from their own address to the
    return path built from it, and one with the null sender to the unsigned form."""
    mail = {"From": "sender@example.com", "To": "victim@example.net", "Subject": "Hello", "TextBody": "x"}
    sent = httpx.post(f"{clean_live_api}/email", json=mail, headers=smtp_server.headers).json()
    hex_id = sent["MessageID"].replace("-", "")
    dsn = (FIXTURES / "postfix_user_unknown.eml").read_bytes().replace(b"gone@example.net", b"victim@example.net")
    dsn = dsn.replace(b"{HEX}", hex_id.encode()).replace(b"{UUID}", sent["MessageID"].encode()).replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as mta:
        # Accepted (250 tells nothing), recorded as nothing.
        assert mta.sendmail("attacker@evil.example", [f"pgb+{hex_id}@bounces.postgate.test"], dsn) == {}
        assert mta.sendmail("", [f"pgb+{hex_id}@bounces.postgate.test"], dsn) == {}
    assert httpx.get(f"{clean_live_api}/bounces?count=10&offset=0", headers=smtp_server.headers).json()["Bounces"] == []
    again = httpx.post(f"{clean_live_api}/email", json=mail, headers=smtp_server.headers)
    assert again.status_code == 200, again.text


def test_complaint_report_becomes_spam_complaint(gateway: Gateway, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
    sent = httpx.post(
        f"{clean_live_api}/email",
        json={"From": "sender@example.com", "To": "angry@example.net", "Subject": "Hello", "TextBody": "x"},
        headers=smtp_server.headers,
    ).json()
    hex_id = sent["MessageID"].replace("-", "")
    report = (
        (FIXTURES / "arf_abuse_report.eml").read_bytes().replace(b"{HEX}", hex_id.encode()).replace(b"{UUID}", sent["MessageID"].encode())
    )
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as mta:
        mta.sendmail("", [f"pgb+{hex_id}@bounces.postgate.test"], report.replace(b"\n", b"\r\n"))
    [bounce] = httpx.get(f"{clean_live_api}/bounces?count=10&offset=0", headers=smtp_server.headers).json()["Bounces"]
    assert (bounce["Type"], bounce["TypeCode"], bounce["CanActivate"]) == ("SpamComplaint", 100001, False)


def test_listener_is_no_open_relay(gateway: Gateway) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as mta:
        mta.ehlo("mx.example.net")
        mta.mail("")
        code, _ = mta.rcpt("victim@example.net")
        assert code == 550
