"""Building the RFC 5322 message for an API send: a pure function, bytes out.

Written directly rather than with `email.message.EmailMessage`, which took most of a send's CPU
time (see bench/RESULTS.md); the stdlib is still used for the parts that need care: RFC 2047
encoded words, RFC 2231 file names, quoted-printable and base64.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import encode_rfc2231, format_datetime, formataddr

from api_service.email.addresses import Mailbox

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


def header_text(name: str, value: str) -> str:
    """An unstructured header value: as is when short ASCII, else encoded words, folded."""
    if value.isascii() and len(name) + len(value) < 76:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep=CRLF)


def address_list(mailboxes: list[Mailbox]) -> str:
    return ("," + CRLF + " ").join(formataddr((m.name, m.email), charset="utf-8") for m in mailboxes)


def _param(name: str, value: str) -> str:
    if value.isascii():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{name}="{escaped}"'
    return f"{name}*={encode_rfc2231(value, 'utf-8')}"


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
        f"Content-Type: {maintype}/{subtype}; {_param('name', att.name)}",
        f"Content-Disposition: {'inline' if inline else 'attachment'}; {_param('filename', att.name)}",
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
    head = [f"From: {formataddr((data.sender.name, data.sender.email), charset='utf-8')}"]
    if data.to:
        head.append(f"To: {address_list(data.to)}")
    elif not data.cc:
        head.append(f"To: {UNDISCLOSED}")
    if data.cc:
        head.append(f"Cc: {address_list(data.cc)}")
    if data.reply_to:
        head.append(f"Reply-To: {address_list(data.reply_to)}")
    head += [
        f"Subject: {header_text('Subject', data.subject)}",
        f"Date: {format_datetime(data.date)}",
        f"Message-ID: {data.message_id}",
    ]
    head += [f"{name}: {header_text(name, value)}" for name, value in data.headers]
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
