"""SMTP TLS Reporting (RFC 8460): the delivery sessions of each day counted per policy domain, and
the daily JSON report mailed (gzip) or posted to the `rua` of `_smtp._tls.<domain>`.

The transport counts sessions in memory (`SessionCounter`, no I/O on the send path); the worker's
TLS-RPT step adds them to `tls_report_sessions` every minute and, once a UTC day is over, builds
and sends each domain's report and keeps it in `tls_reports` (the API and the console show them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from api_service.core import metrics


class PolicyType(StrEnum):
    STS = "sts"
    TLSA = "tlsa"
    NONE = "no-policy-found"


class ResultType(StrEnum):
    """RFC 8460 §4.3: why a session failed."""

    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


@dataclass(frozen=True, slots=True)
class SessionKey:
    day: date
    domain: str
    policy_type: PolicyType
    strings: tuple[str, ...]
    mx: tuple[str, ...]
    result: ResultType | None  # None: a successful session
    receiving_mx: str
    receiving_ip: str
    sending_ip: str


@dataclass
class SessionCounter:
    """Sessions counted since the last `take`; safe to share between the transport's tasks."""

    counts: Counter[SessionKey] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        *,
        domain: str,
        policy_type: PolicyType,
        strings: tuple[str, ...],
        mx: tuple[str, ...],
        result: ResultType | None,
        receiving_mx: str,
        receiving_ip: str,
        sending_ip: str = "",
    ) -> None:
        # A success is counted per policy only: the report names failed sessions, not good ones.
        key = SessionKey(
            day=datetime.now(UTC).date(),
            domain=domain,
            policy_type=policy_type,
            strings=strings,
            mx=mx,
            result=result,
            receiving_mx=receiving_mx if result is not None else "",
            receiving_ip=receiving_ip if result is not None else "",
            sending_ip=sending_ip if result is not None else "",
        )
        with self.lock:
            self.counts[key] += 1
        metrics.TLS_SESSIONS.labels(policy_type.value, result.value if result is not None else "success").inc()

    def take(self) -> Counter[SessionKey]:
        with self.lock:
            taken, self.counts = self.counts, Counter()
        return taken

    def give_back(self, counts: Counter[SessionKey]) -> None:
        """Counts that could not be stored, kept for the next try."""
        with self.lock:
            self.counts.update(counts)


# The report (RFC 8460 §4).


@dataclass(frozen=True, slots=True)
class Counted:
    """One stored count: a row of tls_report_sessions."""

    policy_key: str
    policy_type: str
    policy_strings: list[str]
    mx_hosts: list[str]
    result_type: str
    receiving_mx: str
    receiving_ip: str
    sessions: int
    sending_ip: str = ""


def policy_key(policy_type: str, strings: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256("\n".join([policy_type, *strings]).encode()).hexdigest()


def build_report(*, domain: str, day: date, rows: list[Counted], organization: str, contact: str, report_id: str) -> dict[str, Any]:
    """The report's JSON object, keys in the RFC's order: one policy entry per policy seen that day,
    with its totals and a failure-details entry per result type, MX and address."""
    policies: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = policies.get(row.policy_key)
        if entry is None:
            policy: dict[str, Any] = {"policy-type": row.policy_type}
            if row.policy_type != PolicyType.NONE:
                policy["policy-string"] = list(row.policy_strings)
            policy["policy-domain"] = domain
            if row.mx_hosts:
                policy["mx-host"] = list(row.mx_hosts)
            entry = policies[row.policy_key] = {
                "policy": policy,
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 0},
                "failure-details": [],
            }
        if not row.result_type:
            entry["summary"]["total-successful-session-count"] += row.sessions
            continue
        entry["summary"]["total-failure-session-count"] += row.sessions
        detail: dict[str, Any] = {"result-type": row.result_type}
        if row.sending_ip:
            detail["sending-mta-ip"] = row.sending_ip
        if row.receiving_mx:
            detail["receiving-mx-hostname"] = row.receiving_mx
        if row.receiving_ip:
            detail["receiving-ip"] = row.receiving_ip
        detail["failed-session-count"] = row.sessions
        entry["failure-details"].append(detail)
    for entry in policies.values():
        if not entry["failure-details"]:
            del entry["failure-details"]
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": f"{day.isoformat()}T00:00:00Z", "end-datetime": f"{day.isoformat()}T23:59:59Z"},
        "contact-info": contact,
        "report-id": report_id,
        "policies": list(policies.values()),
    }


def parse_rua(texts: list[str]) -> list[str]:
    """The rua URIs (mailto: and https:) of the one `v=TLSRPTv1` record among `texts` (RFC 8460 §3); [] otherwise."""
    found = [t for t in texts if t.replace(" ", "").startswith("v=TLSRPTv1;")]
    if len(found) != 1:
        return []
    for part in found[0].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == "rua":
            uris = [u.strip() for u in value.split(",") if u.strip()]
            return [u for u in uris if u.lower().startswith(("mailto:", "https://"))]
    return []


def mailto_address(uri: str) -> str | None:
    """`mailto:reports@example.com` → the address (its query dropped); None for a malformed one."""
    address = unquote(uri[len("mailto:") :].split("?", 1)[0]).strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c in address for c in " <>,;\r\n\"'"):
        return None
    return address


def report_mail(
    *, report: dict[str, Any], domain: str, day: date, organization: str, sender: str, to: str, message_id_domain: str
) -> tuple[bytes, bytes]:
    """The report as RFC 8460 §5.3 mail (multipart/report; report-type="tlsrpt", the gzipped JSON as
    application/tlsrpt+gzip), and the gzipped body alone (for an https rua)."""
    body = gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)
    start = int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())
    end = start + 86400 - 1
    unique = report["report-id"].split("@", 1)[0].rsplit(".", 1)[-1]
    filename = f"{organization}!{domain}!{start}!{end}!{unique}.json.gz"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=message_id_domain)
    message["Subject"] = f"Report Domain: {domain} Submitter: {organization} Report-ID: <{report['report-id']}>"
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = organization
    message.set_content(
        f"This is an aggregate TLS report (RFC 8460) from {organization} for {domain}, "
        f"covering {day.isoformat()} (UTC). The report is attached as gzip-compressed JSON.\n"
    )
    message.add_attachment(body, maintype="application", subtype="tlsrpt+gzip", filename=filename)
    message.set_type("multipart/report")
    message.set_param("report-type", "tlsrpt")
    return message.as_bytes(policy=SMTP), body
