"""Bounce classification and DSN/ARF parsing, on real-world shaped samples in tests/fixtures/dsn."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_service.bounces.classify import Outcome, classify
from api_service.bounces.reports import parse_report
from api_service.bounces.verp import parse_return_path, return_path
from shared.constants import BounceType

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dsn"
HEX = "0123456789abcdef0123456789abcdef"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"{HEX}", HEX.encode()).replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    ("code", "text", "outcome", "bounce_type"),
    [
        (250, "2.0.0 Ok", Outcome.DELIVERED, None),
        (451, "4.7.1 Greylisted", Outcome.RETRY, None),
        (421, "Service not available", Outcome.RETRY, None),
        (550, "5.1.1 <a@b.c>: Recipient address rejected: User unknown", Outcome.BOUNCE, BounceType.HARD_BOUNCE),
        (552, "5.2.2 Mailbox full", Outcome.BOUNCE, BounceType.SOFT_BOUNCE),
        (550, "5.2.1 Mailbox disabled", Outcome.BOUNCE, BounceType.SOFT_BOUNCE),
        (554, "5.7.1 Message rejected: listed on a spam blocklist", Outcome.BOUNCE, BounceType.SPAM_NOTIFICATION),
        (550, "5.7.1 Relaying denied", Outcome.BOUNCE, BounceType.BLOCKED),
        (550, "5.7.26 Unauthenticated email is not accepted due to DMARC policy", Outcome.BOUNCE, BounceType.DMARC_POLICY),
        (553, "5.1.3 Bad recipient address syntax", Outcome.BOUNCE, BounceType.BAD_EMAIL_ADDRESS),
        (550, "No such user here", Outcome.BOUNCE, BounceType.HARD_BOUNCE),
        (552, "Message size exceeds fixed limit", Outcome.BOUNCE, BounceType.SOFT_BOUNCE),
        (554, "Transaction failed", Outcome.BOUNCE, BounceType.UNKNOWN),
        (550, "5.1.2 Domain example.invalid does not exist (NXDOMAIN)", Outcome.BOUNCE, BounceType.HARD_BOUNCE),
        (556, "5.1.10 example.net accepts no mail (null MX, RFC 7505)", Outcome.BOUNCE, BounceType.HARD_BOUNCE),
        (553, "5.6.7 mx.example.net does not offer SMTPUTF8", Outcome.BOUNCE, BounceType.HARD_BOUNCE),
        (550, "5.4.4 Refusing to deliver to non-public addresses", Outcome.BOUNCE, BounceType.DNS_ERROR),
        (451, "4.4.3 DNS lookup of the MX of example.net failed (NoNameservers); will retry", Outcome.RETRY, None),
    ],
)
def test_classify(code: int, text: str, outcome: Outcome, bounce_type: BounceType | None) -> None:
    verdict = classify(code, text)
    assert verdict.outcome is outcome
    assert verdict.bounce_type is bounce_type


class TestReports:
    def test_postfix_user_unknown(self) -> None:
        report = parse_report(fixture("postfix_user_unknown.eml"))
        assert report.kind == "dsn"
        [failed] = report.failed
        assert failed.email == "gone@example.net"
        assert failed.status == "5.1.1"
        assert failed.diagnostic.startswith("550 5.1.1 <gone@example.net>: Recipient address rejected")

    def test_exchange_mailbox_full(self) -> None:
        [failed] = parse_report(fixture("exchange_mailbox_full.eml")).failed
        assert (failed.email, failed.status) == ("full@example.net", "5.2.2")

    def test_delayed_is_not_a_failure(self) -> None:
        report = parse_report(fixture("delayed_only.eml"))
        assert report.kind == "dsn"
        assert report.failed == []

    def test_arf_abuse_report(self) -> None:
        report = parse_report(fixture("arf_abuse_report.eml"))
        assert report.kind == "complaint"
        assert report.complainant == "angry@example.net"

    def test_plain_mail_is_unknown(self) -> None:
        assert parse_report(b"From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\n").kind == "unknown"


def test_verp_round_trip() -> None:
    import uuid
    from datetime import UTC, datetime

    from api_service.bounces.verp import returns_to

    message_id = uuid.uuid4()
    address = return_path(message_id=message_id, recipient="A@example.net", domain="bounces.example.com", secret="k")
    assert len(address.partition("@")[0]) <= 64
    path = parse_return_path(address.upper())
    assert path is not None
    assert path.message_id == message_id
    now = datetime.now(UTC)
    assert returns_to(path, recipient="a@example.net", keys=["new", "k"], accepted_at=now, legacy_before=None)
    assert not returns_to(path, recipient="b@example.net", keys=["k"], accepted_at=now, legacy_before=None)
    assert not returns_to(path, recipient="a@example.net", keys=["other"], accepted_at=now, legacy_before=None)
    unsigned = parse_return_path(f"pgb+{message_id.hex}@bounces.example.com")
    assert unsigned is not None
    assert not returns_to(unsigned, recipient="a@example.net", keys=["k"], accepted_at=now, legacy_before=None)
    assert returns_to(unsigned, recipient="a@example.net", keys=["k"], accepted_at=now, legacy_before=datetime.max.replace(tzinfo=UTC))
    assert parse_return_path("someone@example.com") is None
