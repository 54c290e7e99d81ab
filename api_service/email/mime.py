"""Building the RFC 5322 message for an API send: a pure function, bytes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

from api_service.email.addresses import Mailbox

# CRLF line endings and 998-octet lines, as the message will travel over SMTP.
SMTP_POLICY = policy.SMTP.clone(max_line_length=78)


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


def build_mime(data: MimeInput) -> bytes:
    """The message as it will be delivered (without Bcc, which lives in the envelope only)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = data.sender.header()
    if data.to:
        msg["To"] = [m.header() for m in data.to]
    if data.cc:
        msg["Cc"] = [m.header() for m in data.cc]
    if data.reply_to:
        msg["Reply-To"] = [m.header() for m in data.reply_to]
    msg["Subject"] = data.subject
    msg["Date"] = format_datetime(data.date)
    msg["Message-ID"] = data.message_id
    for name, value in data.headers:
        msg[name] = value

    inline = [a for a in data.attachments if a.content_id]
    regular = [a for a in data.attachments if not a.content_id]
    html_part: MIMEPart | None
    if data.text_body is not None and data.html_body is not None:
        msg.set_content(data.text_body)
        msg.add_alternative(data.html_body, subtype="html")
        html_part = next(part for part in msg.iter_parts() if part.get_content_type() == "text/html")
    elif data.html_body is not None:
        msg.set_content(data.html_body, subtype="html")
        html_part = msg
    else:
        msg.set_content(data.text_body or "")
        html_part = None

    for att in inline:
        maintype, subtype = _split_type(att.content_type)
        target = html_part if html_part is not None else msg
        target.add_related(
            att.content,
            maintype=maintype,
            subtype=subtype,
            cid=f"<{att.content_id}>",
            filename=att.name,
            disposition="inline",
        )
    for att in regular:
        maintype, subtype = _split_type(att.content_type)
        msg.add_attachment(att.content, maintype=maintype, subtype=subtype, filename=att.name)
    return msg.as_bytes()
