"""Reports mailed back to a return path: DSNs (RFC 3464) and complaints (RFC 5965 ARF). Pure: bytes in, result out."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from api_service.mail.addresses import domain_of, normalise_email
from api_service.mail.parse import parse


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    email: str
    status: str
    diagnostic: str


@dataclass(slots=True)
class Report:
    """`kind` is "dsn", "complaint" or "unknown"."""

    kind: str
    failed: list[FailedRecipient] = field(default_factory=list)
    complainant: str | None = None
    original_message_id: str | None = None
    reporter: str | None = None
    """The report's From address (who says so)."""


def _address(value: str | None) -> str | None:
    if not value:
        return None
    text = str(value).split(";", 1)[-1].strip()
    if "<" in text and text.endswith(">"):
        text = text[text.rfind("<") :]
    return normalise_email(text.strip("<>"))


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def complaint_from_authority(*, complainant: str, senders: list[str], feedback_loops: list[str]) -> bool:
    """May a report sent by one of `senders` (its From, its envelope sender) suppress `complainant`?

    Only the complainant's own domain (or a subdomain of it, as ISPs send feedback from one) or a
    configured feedback loop (an address, or a domain and its subdomains) speaks for a recipient;
    any other recipient of the same message could otherwise get someone else suppressed.
    """
    target = domain_of(complainant)
    loops = [entry.strip().lower() for entry in feedback_loops if entry.strip()]
    for sender in senders:
        if not sender or "@" not in sender:
            continue
        address, domain = sender.lower(), domain_of(sender)
        if _within(domain, target):
            return True
        if any(address == loop if "@" in loop else _within(domain, loop.lstrip(".")) for loop in loops):
            return True
    return False


def _field_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):
        # Some parsers leave the delivery-status body as text: split its blank-line blocks.
        return [parse(block.encode()) for block in payload.replace("\r\n", "\n").split("\n\n") if block.strip()]
    return []


def _original_message_id(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
            if isinstance(payload, str):
                headers = parse(payload.encode())
                if headers.get("Message-ID"):
                    return str(headers["Message-ID"]).strip()
    return None


def parse_report(raw: bytes) -> Report:
    message = parse(raw)
    report_type = (message.get_param("report-type") or "") if message.get_content_type() == "multipart/report" else ""
    original = _original_message_id(message)
    if str(report_type).lower() == "feedback-report":
        complainant = None
        for part in message.walk():
            if part.get_content_type() == "message/feedback-report":
                for block in _field_blocks(part) or [part]:
                    complainant = complainant or _address(block.get("Original-Rcpt-To"))
        return Report(kind="complaint", complainant=complainant, original_message_id=original, reporter=_address(message.get("From")))
    if str(report_type).lower() != "delivery-status":
        return Report(kind="unknown", original_message_id=original)
    failed = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _field_blocks(part):
            email = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
            action = str(block.get("Action", "")).strip().lower()
            if email and action == "failed":
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split(";", 1)[-1].split())
                failed.append(FailedRecipient(email=email, status=str(block.get("Status", "")).strip(), diagnostic=diagnostic))
    return Report(kind="dsn", failed=failed, original_message_id=original)
