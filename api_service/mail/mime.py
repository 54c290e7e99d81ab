"""Building the RFC 5322 message for an API send: a pure function, bytes out.

Written directly rather than with `email.message.EmailMessage`, which took most of a send's CPU
time (see bench/RESULTS.md) and whose folding breaks the limits (encoded words of 77 characters,
display names on 1,500-character lines); header fields are written by `headers` (RFC 5322 line
limits, RFC 2047 encoded words, RFC 2231 continuations), bodies with the stdlib's
quoted-printable and base64.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from api_service.mail import headers
from api_service.mail.addresses import Mailbox

CRLF = "\r\n"
LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_LINE = 998
# What mail programs write in To when every recipient is in Bcc (an empty RFC 5322 group).
UNDISCLOSED = "undisclosed-recipients:;"


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    name: str
    content: bytes
    content_type: str
    content_id: str | None = None


@dataclass(slots=True)
class MimeInput:
    message_id: str
    date: datetime
    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    reply_to: list[Mailbox]
    subject: str
    text_body: str | None
    html_body: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[AttachmentPart] = field(default_factory=list)


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.partition("/")
    subtype = subtype.split(";", 1)[0].strip()
    if not maintype.strip() or not subtype:
        return "application", "octet-stream"
    return maintype.strip().lower(), subtype.lower()


def address_list(name: str, mailboxes: list[Mailbox]) -> str:
    return headers.address_list(name, [(m.name, m.email) for m in mailboxes])


def _text_part(body: str, subtype: str) -> list[str]:
    # Only CR, LF and CRLF end lines in mail; str.splitlines() would also split on \x1c, \u2028 …
    data = CRLF.join(LINE_BREAK.split(body)).encode()
    if data.isascii() and all(len(line) <= MAX_LINE for line in data.split(b"\r\n")):
        encoding, payload = "7bit", data.decode("ascii")
    else:
        encoding = "quoted-printable"
        # b2a_qp writes its soft line breaks as bare LF when the input has no CRLF in it.
        payload = CRLF.join(LINE_BREAK.split(binascii.b2a_qp(data, istext=True).decode("ascii")))
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
        "",
        payload,
    ]


def _base64_lines(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", CRLF).rstrip(CRLF)


def _attachment_part(att: AttachmentPart, *, inline: bool) -> list[str]:
    maintype, subtype = _split_type(att.content_type)
    lines = [
        headers.with_parameters("Content-Type", f"{maintype}/{subtype}", headers.parameter("name", att.name)),
        headers.with_parameters("Content-Disposition", "inline" if inline else "attachment", headers.parameter("filename", att.name)),
        "Content-Transfer-Encoding: base64",
    ]
    if inline:
        lines.append(f"Content-ID: <{att.content_id}>")
    return [*lines, "", _base64_lines(att.content)]


def _multipart(subtype: str, parts: list[list[str]]) -> list[str]:
    boundary = f"=_pg_{secrets.token_hex(12)}"
    lines = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"', ""]
    for part in parts:
        lines += [f"--{boundary}", *part]
    lines += [f"--{boundary}--", ""]
    return lines


def build_mime(data: MimeInput) -> bytes:
    """The message as it will be delivered (without Bcc, which lives in the envelope only)."""
    head = [address_list("From", [data.sender])]
    if data.to:
        head.append(address_list("To", data.to))
    elif not data.cc:
        head.append(f"To: {UNDISCLOSED}")
    if data.cc:
        head.append(address_list("Cc", data.cc))
    if data.reply_to:
        head.append(address_list("Reply-To", data.reply_to))
    head += [
        headers.unstructured("Subject", data.subject),
        f"Date: {format_datetime(data.date)}",
        f"Message-ID: {data.message_id}",
    ]
    head += [headers.unstructured(name, value) for name, value in data.headers]
    head.append("MIME-Version: 1.0")

    body: list[str]
    if data.text_body is not None and data.html_body is not None:
        html = _text_part(data.html_body, "html")
        text = _text_part(data.text_body, "plain")
    elif data.html_body is not None:
        html, text = _text_part(data.html_body, "html"), []
    else:
        html, text = [], _text_part(data.text_body or "", "plain")

    inline = [_attachment_part(a, inline=True) for a in data.attachments if a.content_id]
    if inline:
        if html:
            html = _multipart("related", [html, *inline])
        else:
            text = _multipart("related", [text, *inline])
    body = _multipart("alternative", [text, html]) if text and html else (html or text)
    regular = [_attachment_part(a, inline=False) for a in data.attachments if not a.content_id]
    if regular:
        body = _multipart("mixed", [body, *regular])
    return CRLF.join([*head, *body]).encode("ascii")
