"""Taking one address out of a stored message (a data removal): pure functions, bytes in, bytes out.

The address, wherever it appears as a whole address (never inside a longer one), becomes the
placeholder; in address headers (To, Cc, Reply-To …) its whole mailbox, display name included,
does. Text parts in quoted-printable or base64 are decoded, scrubbed and encoded again; other
parts (attachments, images) are left as they are.
"""

from __future__ import annotations

import contextlib
import re
from email.charset import BASE64, QP, Charset
from email.message import Message
from email.utils import formataddr, getaddresses
from typing import Any

from api_service.mail.address_match import address_pattern
from api_service.mail.parse import generate, parse

ADDRESS_HEADERS = frozenset(
    {
        b"from",
        b"sender",
        b"to",
        b"cc",
        b"bcc",
        b"reply-to",
        b"return-path",
        b"delivered-to",
        b"x-original-to",
        b"resent-from",
        b"resent-to",
        b"resent-cc",
        b"disposition-notification-to",
    }
)


def mentions(data: bytes, address: str) -> bool:
    return address_pattern(address).search(data) is not None


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, the blank line, body); a message without a body has an empty one."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, sep, body = raw.partition(separator)
        if sep:
            return head + separator[: len(separator) // 2], separator[len(separator) // 2 :], body
    return raw, b"", b""


def _fields(head: bytes) -> list[bytes]:
    """Header fields with their continuation lines and line ends."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def scrub_mailbox_list(value: str, address: str, placeholder: str) -> str | None:
    """An address list (`Ann <ann@x>, "Doe, Bob" <bob@y>`) with the address's whole mailbox, display
    name included, replaced; None when the address is not one of its mailboxes."""
    mailboxes = getaddresses([value])
    if not any(addr.lower() == address for _, addr in mailboxes):
        return None
    return ", ".join(placeholder if addr.lower() == address else formataddr((real, addr)) for real, addr in mailboxes if addr)


def _rewrite_field(field: bytes, address: str, placeholder: str) -> bytes:
    name, _, value = field.partition(b":")
    newline = b"\r\n" if field.endswith(b"\r\n") else b"\n"
    text = re.sub(r"\r?\n[ \t]", " ", value.decode("utf-8", "surrogateescape")).strip()
    scrubbed = scrub_mailbox_list(text, address, placeholder)
    if scrubbed is None:
        return field
    folded = scrubbed.replace(", ", "," + newline.decode() + " ")
    return name + b": " + folded.encode("utf-8", "surrogateescape") + newline


def _scrub_text_parts(raw: bytes, address: str, placeholder: str) -> bytes:
    """Decode, scrub and encode again each quoted-printable or base64 text part that mentions the address."""
    parsed = parse(raw)
    pattern = address_pattern(address)
    changed = False
    for part in parsed.walk():
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if part.is_multipart() or part.get_content_maintype() != "text" or encoding not in ("quoted-printable", "base64"):
            continue
        decoded = part.get_payload(decode=True)
        if not isinstance(decoded, bytes) or not pattern.search(decoded):
            continue
        _set_encoded(part, pattern.sub(placeholder.encode(), decoded), encoding)
        changed = True
    if not changed:
        return raw
    return generate(parsed)


def _set_encoded(part: Message, data: bytes, encoding: str) -> None:
    charset = Charset("utf-8")
    charset.body_encoding = QP if encoding == "quoted-printable" else BASE64
    payload = charset.body_encode(data)  # bytes in: encoded as they are, whatever their charset
    part.set_payload(payload.replace("\r\n", "\n").replace("\n", "\r\n"))


def scrub_address(raw: bytes, address: str, placeholder: str) -> bytes:
    """The message with `address` (compared case-insensitively) replaced by `placeholder` everywhere it shows."""
    address = address.lower()
    with contextlib.suppress(Exception):  # a message the parser cannot take still gets the plain replacement below
        raw = _scrub_text_parts(raw, address, placeholder)
    head, separator, body = _split(raw)
    fields = [
        _rewrite_field(f, address, placeholder) if f.partition(b":")[0].strip().lower() in ADDRESS_HEADERS else f for f in _fields(head)
    ]
    scrubbed = b"".join(fields) + separator + body
    return address_pattern(address).sub(placeholder.encode(), scrubbed)


def scrub_text(value: str, address: str, placeholder: str) -> str:
    """A text field (a bounce's details) with the address replaced."""
    return (
        address_pattern(address.lower())
        .sub(placeholder.encode(), value.encode("utf-8", "surrogateescape"))
        .decode("utf-8", "surrogateescape")
    )


def scrub_json(value: Any, address: str, placeholder: str) -> Any:
    """A JSON value (a stored API response) with the address replaced in every string; in a string
    that is an address list (`To`, `Cc`) its whole mailbox, display name included, is."""
    if isinstance(value, dict):
        return {key: scrub_json(item, address, placeholder) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_json(item, address, placeholder) for item in value]
    if isinstance(value, str) and mentions(value.encode("utf-8", "surrogateescape"), address):
        return scrub_mailbox_list(value, address.lower(), placeholder) or scrub_text(value, address, placeholder)
    return value
