"""Reading a message received over SMTP: pure functions, bytes in, typed result out."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

from api_service.email.addresses import AddressError, Mailbox, parse_address_list, parse_mailbox
from shared.constants import DEFAULT_MESSAGE_STREAM, MAX_METADATA_KEYS, TrackLinks

CONTROL_PREFIX = b"x-pm-"
HEADER_END = re.compile(rb"\r\n\r\n|\n\n")
FIELD_START = re.compile(rb"^[!-9;-~]+:")


@dataclass(slots=True)
class SmtpMessage:
    """What the gateway needs of a message, and the control headers Postmark honours."""

    sender: Mailbox | None
    to: list[Mailbox]
    cc: list[Mailbox]
    subject: str
    message_id: str | None
    tag: str = ""
    message_stream: str = DEFAULT_MESSAGE_STREAM
    metadata: dict[str, str] = field(default_factory=dict)
    track_opens: bool | None = None
    track_links: str | None = None
    keep_id: bool = False
    attachment_names: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header block with its final line break, the rest)."""
    match = HEADER_END.search(raw)
    if match is None:
        return raw, b""
    cut = match.start() + len(match.group()) // 2
    return raw[:cut], raw[cut:]


def header_fields(head: bytes) -> list[bytes]:
    """The header block as whole fields, each with its continuation lines and line break."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def rewrite_headers(raw: bytes, *, message_id: str | None) -> bytes:
    """Drop every X-PM-* control header and any Bcc (the envelope carries it), and, when given,
    set the Message-ID."""
    head, body = split_head(raw)
    kept = []
    for item in header_fields(head):
        name = item.split(b":", 1)[0].strip().lower()
        if name.startswith(CONTROL_PREFIX) or name == b"bcc":
            continue
        if message_id is not None and name == b"message-id":
            continue
        kept.append(item)
    if message_id is not None:
        kept.insert(0, f"Message-ID: {message_id}\r\n".encode())
    return b"".join(kept) + body


def content_key(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


_HEADERS = BytesHeaderParser(policy=policy.compat32)
_UNFOLD = re.compile(r"\r?\n[ \t]")


def _text(value: object) -> str:
    """A header value unfolded, with RFC 2047 encoded words decoded."""
    text = _UNFOLD.sub(" ", str(value))
    if "=?" in text:
        try:
            return str(make_header(decode_header(text)))
        except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
            return text
    return text


def _addresses(message: Message, name: str, problems: list[str]) -> list[Mailbox]:
    found: list[Mailbox] = []
    for value in message.get_all(name) or []:
        try:
            found += parse_address_list(_text(value))
        except AddressError as exc:
            problems.append(f"Invalid '{name}' address: '{exc}'.")
    return found


def _attachment_names(raw: bytes, content_type: str) -> list[str]:
    if not content_type.lower().lstrip().startswith("multipart/"):
        return []
    lowered = raw.lower()
    if b"filename" not in lowered and b"name=" not in lowered and b"name*" not in lowered:
        return []  # no part names a file: nothing to parse the body for
    names = []
    for part in message_from_bytes(raw, policy=policy.compat32).walk():
        filename = part.get_filename()
        if filename:
            names.append(_text(filename))
    return names


def parse_smtp_message(raw: bytes) -> SmtpMessage:
    """Read the headers that matter; problems are collected, not raised (Postmark's SMTP model).

    Headers are read with the compat32 parser, which is several times faster than the default
    policy's full parse; the body is parsed only for a multipart message's attachment names.
    """
    message = _HEADERS.parsebytes(raw)
    problems: list[str] = []
    sender = None
    from_value = message.get("From")
    if from_value is None:
        problems.append("The message has no 'From' header.")
    else:
        try:
            sender = parse_mailbox(_text(from_value))
        except AddressError:
            problems.append(f"Invalid 'From' address: '{_text(from_value)}'.")
    message_id = message.get("Message-ID")
    parsed = SmtpMessage(
        sender=sender,
        to=_addresses(message, "To", problems),
        cc=_addresses(message, "Cc", problems),
        subject=_text(message.get("Subject", "")),
        message_id=_text(message_id).strip() if message_id else None,
        problems=problems,
    )
    metadata: dict[str, str] = {}
    for name, value in message.items():
        lowered = name.lower()
        if not lowered.startswith("x-pm-"):
            continue
        text = _text(value).strip()
        if lowered == "x-pm-tag":
            parsed.tag = text[:1000]
        elif lowered == "x-pm-message-stream":
            parsed.message_stream = text.lower() or DEFAULT_MESSAGE_STREAM
        elif lowered.startswith("x-pm-metadata-"):
            key = name[len("x-pm-metadata-") :]
            suffix = 1
            while key in metadata:
                suffix += 1
                key = f"{name[len('x-pm-metadata-') :]}{suffix}"
            metadata[key] = text
        elif lowered == "x-pm-trackopens":
            parsed.track_opens = text.lower() == "true"
        elif lowered == "x-pm-tracklinks":
            parsed.track_links = next((t.value for t in TrackLinks if t.value.lower() == text.lower()), None)
            if parsed.track_links is None:
                problems.append(f"Invalid X-PM-TrackLinks value: '{text}'.")
        elif lowered == "x-pm-keepid":
            parsed.keep_id = text.lower() == "true"
    if len(metadata) > MAX_METADATA_KEYS:
        problems.append(f"Metadata may have at most {MAX_METADATA_KEYS} keys.")
    parsed.metadata = metadata
    parsed.attachment_names = _attachment_names(raw, str(message.get("Content-Type", "")))
    return parsed
