"""SMTP TLS Reporting (RFC 8460): the delivery sessions of each day counted per policy domain, and
the daily JSON report mailed (gzip) or posted to the `rua` of `_smtp._tls.<domain>`.

The transport counts sessions in memory (`SessionCounter`, no I/O on the send path); the worker's
TLS-RPT step adds them to `tls_report_sessions` every minute and, once a UTC day is over, builds
and sends each domain's report and keeps it in `tls_reports` (the API and the console show them).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum


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
        )
        with self.lock:
            self.counts[key] += 1

    def take(self) -> Counter[SessionKey]:
        with self.lock:
            taken, self.counts = self.counts, Counter()
        return taken

    def give_back(self, counts: Counter[SessionKey]) -> None:
        """Counts that could not be stored, kept for the next try."""
        with self.lock:
            self.counts.update(counts)
