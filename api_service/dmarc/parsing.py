"""DMARC aggregate reports (RFC 7489 §7.2 XML), failure reports (§7.3, ARF with Feedback-Type
auth-failure, RFC 6591) and SMTP TLS reports (RFC 8460 JSON) out of the mail that carries them:
pure functions, bytes in, typed reports out. Anything that is not such a report raises `ReportError`.

The senders are anyone on the internet, so every step has a cap: the XML is parsed with defusedxml
(no DTD, no entity expansion, no external references), a gzip or zip member is read at most
`MAX_REPORT_BYTES` decompressed (a zip bomb stops there, it is never inflated whole), a zip may
hold at most `MAX_ZIP_MEMBERS` files, an aggregate report at most `MAX_RECORDS` rows, and a message
at most `MAX_ATTACHMENTS` report attachments.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from ipaddress import ip_address
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from api_service.mail.parse import decoded, parse, parse_head

MAX_REPORT_BYTES = 20 * 1024 * 1024
MAX_ZIP_MEMBERS = 4
MAX_RECORDS = 50_000
MAX_ATTACHMENTS = 8
MAX_TEXT = 255


class ReportError(ValueError):
    """Not a report Postgate can read (the message says why)."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    domain: str
    result: str
    selector: str = ""  # DKIM
    scope: str = ""  # SPF: mfrom or helo


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    source_ip: str
    count: int
    disposition: str
    dkim_aligned: bool
    spf_aligned: bool
    header_from: str
    envelope_from: str
    dkim: list[AuthResult] = field(default_factory=list)
    spf: list[AuthResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AggregateReport:
    org_name: str
    email: str
    report_id: str
    begin: datetime
    end: datetime
    domain: str  # policy_published/domain
    policy: dict[str, str]
    records: list[AggregateRecord]


@dataclass(frozen=True, slots=True)
class FailureReport:
    """One message that failed DMARC, as an auth-failure ARF report tells it."""

    reporter: str
    report_id: str
    arrived: datetime
    domain: str  # Reported-Domain
    source_ip: str
    header_from: str
    envelope_from: str
    dkim_domain: str
    auth_failure: str
    subject: str


@dataclass(frozen=True, slots=True)
class TlsFailure:
    result_type: str
    sending_mta_ip: str
    receiving_mx_hostname: str
    failed_session_count: int
    additional_information: str = ""


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    policy_type: str
    policy_domain: str
    successes: int
    failures: int
    mx_hosts: list[str]
    failure_details: list[TlsFailure]


@dataclass(frozen=True, slots=True)
class TlsReport:
    org_name: str
    contact: str
    report_id: str
    begin: datetime
    end: datetime
    policies: list[TlsPolicy]


Report = AggregateReport | FailureReport | TlsReport


# --- decompression ----------------------------------------------------------------------------------


def _bounded_gzip(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_REPORT_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ReportError(f"broken gzip: {exc}") from None
    if len(out) > MAX_REPORT_BYTES:
        raise ReportError(f"the report inflates past {MAX_REPORT_BYTES} bytes")
    return out


def _bounded_zip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members or len(members) > MAX_ZIP_MEMBERS:
                raise ReportError(f"a report zip holds 1 to {MAX_ZIP_MEMBERS} files, not {len(members)}")
            with archive.open(members[0]) as stream:  # the size in the zip header may lie: read with a cap
                out = stream.read(MAX_REPORT_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ReportError(f"broken zip: {exc}") from None
    if len(out) > MAX_REPORT_BYTES:
        raise ReportError(f"the report inflates past {MAX_REPORT_BYTES} bytes")
    return out


def unpack(data: bytes) -> bytes:
    """A report's bytes, inflated when gzip or zip (by their magic, whatever the part claims)."""
    if data[:2] == b"\x1f\x8b":
        return _bounded_gzip(data)
    if data[:4] == b"PK\x03\x04":
        return _bounded_zip(data)
    return data


# --- aggregate reports -------------------------------------------------------------------------------


def _text(node: Element | None, path: str, default: str = "") -> str:
    found = node.find(path) if node is not None else None
    text = (found.text or "").strip() if found is not None else ""
    return (text or default)[:MAX_TEXT]


def _int(value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ReportError(f"{what} is not a number: {value[:40]!r}") from None
    if number < 0 or number > 2**53:
        raise ReportError(f"{what} is out of range: {number}")
    return number


def _timestamp(value: str, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(_int(value, what), UTC)
    except (OverflowError, OSError, ValueError):
        raise ReportError(f"{what} is not a time: {value[:40]!r}") from None


def _ip(value: str) -> str:
    try:
        return str(ip_address(value.strip()))
    except ValueError:
        raise ReportError(f"source_ip is not an IP address: {value[:60]!r}") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _strip_namespaces(root: Element) -> None:
    """DMARCbis reports put everything in a namespace; RFC 7489 ones in none. Read both alike."""
    for node in root.iter():
        if isinstance(node.tag, str):
            node.tag = _local(node.tag)


def parse_aggregate(xml: bytes) -> AggregateReport:
    """An RFC 7489 aggregate report from its XML."""
    try:
        root = defusedxml.ElementTree.fromstring(xml, forbid_dtd=True)
    except (DefusedXmlException, SyntaxError, ValueError) as exc:
        raise ReportError(f"not XML Postgate accepts: {type(exc).__name__}") from None
    _strip_namespaces(root)
    if root.tag != "feedback":
        raise ReportError(f"the root element is <{root.tag[:40]}>, not <feedback>")
    metadata, policy = root.find("report_metadata"), root.find("policy_published")
    if metadata is None or policy is None:
        raise ReportError("report_metadata or policy_published is missing")
    domain = _text(policy, "domain").lower().rstrip(".")
    report_id = _text(metadata, "report_id")
    if not domain or not report_id:
        raise ReportError("the policy domain or the report_id is missing")
    rows = root.findall("record")
    if len(rows) > MAX_RECORDS:
        raise ReportError(f"more than {MAX_RECORDS} records")
    return AggregateReport(
        org_name=_text(metadata, "org_name", "unknown"),
        email=_text(metadata, "email"),
        report_id=report_id,
        begin=_timestamp(_text(metadata, "date_range/begin", "0"), "date_range/begin"),
        end=_timestamp(_text(metadata, "date_range/end", "0"), "date_range/end"),
        domain=domain,
        policy={key: _text(policy, key) for key in ("adkim", "aspf", "p", "sp", "pct", "np") if _text(policy, key)},
        records=[_record(row) for row in rows],
    )


def _record(row: Element) -> AggregateRecord:
    evaluated = row.find("row/policy_evaluated")
    results = row.find("auth_results")
    return AggregateRecord(
        source_ip=_ip(_text(row, "row/source_ip")),
        count=_int(_text(row, "row/count", "0"), "count"),
        disposition=_text(evaluated, "disposition", "none").lower()[:20],
        dkim_aligned=_text(evaluated, "dkim").lower() == "pass",
        spf_aligned=_text(evaluated, "spf").lower() == "pass",
        header_from=_text(row, "identifiers/header_from").lower(),
        envelope_from=_text(row, "identifiers/envelope_from").lower(),
        dkim=[
            AuthResult(domain=_text(n, "domain").lower(), result=_text(n, "result").lower(), selector=_text(n, "selector"))
            for n in (results.findall("dkim") if results is not None else [])
        ],
        spf=[
            AuthResult(domain=_text(n, "domain").lower(), result=_text(n, "result").lower(), scope=_text(n, "scope").lower())
            for n in (results.findall("spf") if results is not None else [])
        ],
    )


# --- TLS reports ---------------------------------------------------------------------------------------


def _get(obj: Any, key: str, kind: type, default: Any) -> Any:
    value = obj.get(key, default) if isinstance(obj, dict) else default
    return value if isinstance(value, kind) and not (kind is int and isinstance(value, bool)) else default


def _iso(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{what} is not an RFC 3339 time: {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_tls(data: bytes) -> TlsReport:
    """An RFC 8460 report from its JSON."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReportError("the TLS report is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("policies"), list) or not _get(body, "report-id", str, ""):
        raise ReportError("a TLS report has report-id and policies")
    dates = _get(body, "date-range", dict, {})
    policies = []
    for item in body["policies"][:100]:
        policy = _get(item, "policy", dict, {})
        summary = _get(item, "summary", dict, {})
        details = _get(item, "failure-details", list, [])[:100]
        policies.append(
            TlsPolicy(
                policy_type=_get(policy, "policy-type", str, "")[:30],
                policy_domain=_get(policy, "policy-domain", str, "").lower().rstrip(".")[:MAX_TEXT],
                successes=max(0, _get(summary, "total-successful-session-count", int, 0)),
                failures=max(0, _get(summary, "total-failure-session-count", int, 0)),
                mx_hosts=[h[:MAX_TEXT] for h in _get(policy, "mx-host", list, []) if isinstance(h, str)][:20],
                failure_details=[
                    TlsFailure(
                        result_type=_get(d, "result-type", str, "")[:60],
                        sending_mta_ip=_get(d, "sending-mta-ip", str, "")[:45],
                        receiving_mx_hostname=_get(d, "receiving-mx-hostname", str, "")[:MAX_TEXT],
                        failed_session_count=max(0, _get(d, "failed-session-count", int, 0)),
                        additional_information=_get(d, "additional-information", str, "")[:MAX_TEXT],
                    )
                    for d in details
                    if isinstance(d, dict)
                ],
            )
        )
    return TlsReport(
        org_name=_get(body, "organization-name", str, "unknown")[:MAX_TEXT],
        contact=_get(body, "contact-info", str, "")[:MAX_TEXT],
        report_id=body["report-id"][:MAX_TEXT],
        begin=_iso(_get(dates, "start-datetime", str, "1970-01-01T00:00:00Z"), "start-datetime"),
        end=_iso(_get(dates, "end-datetime", str, "1970-01-01T00:00:00Z"), "end-datetime"),
        policies=policies,
    )


# --- failure reports -----------------------------------------------------------------------------------


def _fields(part: Message) -> dict[str, str]:
    """The `name: value` lines of a message/feedback-report part, names lower-cased."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser may read it as a list of header blocks
        lines = "\n".join(str(p) for p in payload)
    else:
        raw = part.get_payload(decode=True)
        lines = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    found: dict[str, str] = {}
    for line in lines.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            found.setdefault(name.strip().lower(), value.strip()[:MAX_TEXT])
    return found


def _failure(message: Message, part: Message) -> FailureReport:
    fields = _fields(part)
    if fields.get("feedback-type", "").lower() != "auth-failure":
        raise ReportError(f"Feedback-Type is {fields.get('feedback-type', 'missing')!r}, not auth-failure")
    domain = fields.get("reported-domain", "").lower().rstrip(".")
    if not domain:
        raise ReportError("an auth-failure report names its Reported-Domain")
    original = next((p for p in message.walk() if p.get_content_type() in ("message/rfc822", "text/rfc822-headers")), None)
    header_from, subject = "", ""
    if original is not None:
        inner = original.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            head: Message = inner[0]
        else:
            text = original.get_payload(decode=True)
            head = parse_head(text if isinstance(text, bytes) else str(inner).encode("utf-8", "replace"))
        header_from = decoded(head.get("From", ""))[:MAX_TEXT]
        subject = decoded(head.get("Subject", ""))[:MAX_TEXT]
    try:
        source_ip = _ip(fields.get("source-ip", ""))
    except ReportError:
        source_ip = ""
    arrived = datetime.now(UTC)
    return FailureReport(
        reporter=decoded(message.get("From", "unknown"))[:MAX_TEXT],
        report_id=(str(message.get("Message-ID", "")).strip() or f"{domain}-{arrived.timestamp()}")[:MAX_TEXT],
        arrived=arrived,
        domain=domain,
        source_ip=source_ip,
        header_from=header_from,
        envelope_from=fields.get("original-mail-from", "").strip("<>")[:MAX_TEXT],
        dkim_domain=fields.get("dkim-domain", ""),
        auth_failure=fields.get("auth-failure", ""),
        subject=subject,
    )


# --- the message ---------------------------------------------------------------------------------------

TLS_TYPES = {"application/tlsrpt+gzip", "application/tlsrpt+json"}
AGGREGATE_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip-compressed",
    "application/x-zip",
    "application/xml",
    "text/xml",
    "application/octet-stream",
}


def reports_in(raw: bytes) -> list[Report]:
    """Every report a received message carries (aggregate, failure or TLS); raises when there is none."""
    message = parse(raw)
    if message.get_content_type() == "multipart/report" and str(message.get_param("report-type") or "").lower() == "feedback-report":
        part = next((p for p in message.walk() if p.get_content_type() == "message/feedback-report"), None)
        if part is None:
            raise ReportError("a feedback report without its message/feedback-report part")
        return [_failure(message, part)]
    reports: list[Report] = []
    problems: list[str] = []
    parts = [p for p in message.walk() if not p.is_multipart()]
    for part in parts:
        kind = part.get_content_type()
        name = (part.get_filename() or "").lower()
        is_tls = kind in TLS_TYPES or name.endswith((".json", ".json.gz"))
        if not is_tls and kind not in AGGREGATE_TYPES and not name.endswith((".xml", ".xml.gz", ".zip", ".gz")):
            continue
        if len(reports) >= MAX_ATTACHMENTS:
            break
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            data = unpack(payload)
            reports.append(parse_tls(data) if is_tls or data.lstrip()[:1] == b"{" else parse_aggregate(data))
        except ReportError as exc:
            problems.append(str(exc))
    if not reports:
        raise ReportError(problems[0] if problems else "the message carries no DMARC or TLS report")
    return reports
