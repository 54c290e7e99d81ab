"""A DMARC aggregate report mailed to the MX listener over real SMTP shows up per source in the API
as soon as the listener has said 250 (it is read at receipt, not by a later job)."""

from __future__ import annotations

import smtplib
import time
from datetime import UTC, datetime

import httpx
import pytest

from api_service.config import Settings
from tests.api.core.dns_server import Zone
from tests.api.dmarc.reports import Row, aggregate_xml, gzipped, report_mail
from tests.compat.conftest import compat_dns
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway

__all__ = ["compat_dns"]
pytestmark = pytest.mark.slow
ACCOUNT = {"X-Postmark-Account-Token": ACCOUNT_TOKEN, "Accept": "application/json"}


def test_aggregate_report_is_shown_per_source_once_received(
    gateway: Gateway, clean_live_api: str, compat_dns: tuple[Zone, str], settings: Settings
) -> None:
    created = httpx.post(f"{clean_live_api}/domains", json={"Name": "example.org"}, headers=ACCOUNT)
    assert created.status_code == 200, created.text
    compat_dns[0].ptr("192.0.2.77", "mta.sender.example")
    address = settings.dmarc_report_mailbox
    rows = [Row("192.0.2.77", 25, dkim="pass", spf="pass"), Row("203.0.113.5", 5, dkim="fail", spf="fail")]
    raw = report_mail(gzipped(aggregate_xml(rows, begin=int(datetime.now(UTC).timestamp()) - 3600)), to=address)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as client:
        client.sendmail("noreply-dmarc@receiver.example", [address], raw)
    summary = httpx.get(f"{clean_live_api}/domains/{created.json()['ID']}/dmarc", headers=ACCOUNT).json()
    assert time.monotonic() - started < 60
    assert [(s["IP"], s["PTR"], s["Messages"], s["DMARCPass"]) for s in summary["Sources"]] == [
        ("192.0.2.77", "mta.sender.example", 25, 25),
        ("203.0.113.5", "", 5, 0),
    ]


def test_mail_to_the_report_address_that_is_no_report_is_refused(gateway: Gateway, clean_live_api: str, settings: Settings) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.settings.smtp_inbound_port, timeout=10) as client:
        client.ehlo("client.example.net")
        assert client.mail("someone@example.net")[0] == 250
        assert client.rcpt(settings.dmarc_report_mailbox)[0] == 250
        code, _ = client.data(b"From: someone@example.net\r\nSubject: hello\r\n\r\nIs this the DMARC team?\r\n")
    assert code == 550
