"""The JSON adapter: a `/email` body (`EmailRequest`) or a `/email/withTemplate` one → `OutgoingMessage`.

Pure, no I/O. A body that breaks Postmark's field rules raises PostmarkError (300) at once: the
REST API refuses bad input before anything is stored.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from api_service.core.dates import parse_send_at
from api_service.email.message import OutgoingMessage
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.mail.addresses import AddressError, Mailbox, parse_address_list, parse_mailbox, split_items
from api_service.mail.headers import token_safe
from api_service.mail.mime import AttachmentPart
from api_service.models import MessageSource
from api_service.templates.reference import TemplateReference
from shared.constants import (
    DEFAULT_MESSAGE_STREAM,
    MAX_ADDRESS_FIELD_CHARS,
    MAX_BODY_BYTES,
    MAX_CUSTOM_HEADERS,
    MAX_FROM_CHARS,
    MAX_HEADER_VALUE_CHARS,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_RECIPIENTS_PER_FIELD,
    MAX_SUBJECT_CHARS,
    MAX_TAG_CHARS,
    ErrorCode,
    TrackLinks,
)
from shared.schemas.base import unstorable_field
from shared.schemas.email import EmailRequest
from shared.schemas.templates import TemplatedEmailRequest

FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")
# Headers Postgate writes itself from the message's fields; a custom one would contradict them.
STRUCTURAL_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "reply-to", "sender", "mime-version", "content-type", "content-transfer-encoding"}
)
MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
# A Message-ID or Content-ID cannot be folded: it must fit on its header's one line (998).
MAX_ID_CHARS = 900


def _addresses(value: str | None, field: str) -> list[Mailbox]:
    if value is None or not value.strip():
        return []
    if len(value) > MAX_ADDRESS_FIELD_CHARS:
        raise InvalidEmailRequest(f"The '{field}' field must be at most {MAX_ADDRESS_FIELD_CHARS} characters.")
    try:
        count = len(split_items(value))
        if count > MAX_RECIPIENTS_PER_FIELD:  # counted before each address is validated
            raise InvalidEmailRequest(f"Too many '{field}' recipients ({count}). The maximum is {MAX_RECIPIENTS_PER_FIELD}.")
        mailboxes = parse_address_list(value)
    except AddressError as exc:
        raise InvalidEmailRequest(f"Invalid '{field}' address: '{exc}'.") from None
    if len(mailboxes) > MAX_RECIPIENTS_PER_FIELD:
        raise InvalidEmailRequest(f"Too many '{field}' recipients ({len(mailboxes)}). The maximum is {MAX_RECIPIENTS_PER_FIELD}.")
    return mailboxes


# RFC 2046 top-level types an attachment may have (multipart is structure, not content).
MEDIA_TYPES = frozenset({"application", "audio", "font", "image", "message", "model", "text", "video"})


def valid_content_type(value: str) -> bool:
    """`type/subtype`, optionally with `; parameters` (which are not kept): RFC 2045 tokens, a
    registered top-level type."""
    if len(value) > 255 or any(c in value for c in "\r\n"):
        return False
    media, _, _params = value.partition(";")
    maintype, slash, subtype = media.strip().partition("/")
    return bool(slash) and maintype.lower() in MEDIA_TYPES and token_safe(subtype)


def _attachment(raw: Any, index: int) -> AttachmentPart:
    name = (raw.Name or "").strip()
    if not name or any(c in name for c in "\r\n"):
        raise InvalidEmailRequest(f"Attachment {index + 1} has no valid 'Name'.")
    try:
        content = base64.b64decode("".join((raw.Content or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest(f"Attachment '{name}' has no valid Base64 'Content'.") from None
    content_type = (raw.ContentType or "application/octet-stream").strip()
    if not valid_content_type(content_type):
        raise InvalidEmailRequest(f"Attachment '{name[:100]}' has an invalid 'ContentType': '{content_type[:100]}' is not a MIME type.")
    content_id = (raw.ContentID or "").strip() or None
    if content_id is not None:
        content_id = content_id.removeprefix("cid:").strip("<>")
        if not content_id or len(content_id) > MAX_ID_CHARS or any(c in content_id for c in "\r\n<> "):
            raise InvalidEmailRequest(f"Attachment '{name}' has an invalid 'ContentID'.")
    return AttachmentPart(name=name, content=content, content_type=content_type, content_id=content_id)


def _sender(request: EmailRequest) -> Mailbox:
    if not request.From or not request.From.strip():
        raise InvalidEmailRequest("The 'From' address is required.")
    if len(request.From) > MAX_FROM_CHARS:
        raise InvalidEmailRequest(f"The 'From' field must be at most {MAX_FROM_CHARS} characters.")
    try:
        return parse_mailbox(request.From)
    except AddressError:
        raise InvalidEmailRequest(f"Invalid 'From' address: '{request.From}'.") from None


def _headers(request: EmailRequest) -> tuple[list[tuple[str, str]], str | None]:
    """(the custom headers to write, a Message-ID given among them)."""
    headers: list[tuple[str, str]] = []
    custom_message_id = None
    if len(request.Headers or []) > MAX_CUSTOM_HEADERS:
        raise InvalidEmailRequest(f"At most {MAX_CUSTOM_HEADERS} custom Headers may be given.")
    for header in request.Headers or []:
        name = (header.Name or "").strip()
        value = header.Value or ""
        if not FIELD_NAME.match(name):
            raise InvalidEmailRequest(f"Invalid header name: '{name[:100]}'.")
        if len(value) > MAX_HEADER_VALUE_CHARS:
            raise InvalidEmailRequest(f"The value of header '{name}' must be at most {MAX_HEADER_VALUE_CHARS} characters.")
        if "\r" in value or "\n" in value:
            raise InvalidEmailRequest(f"The value of header '{name}' must not contain line breaks.")
        lowered = name.lower()
        if lowered == "message-id":
            if len(value.strip()) > MAX_ID_CHARS or not MESSAGE_ID.match(value.strip()):
                raise InvalidEmailRequest("The 'Message-ID' header must look like <id@domain>.")
            custom_message_id = value.strip()
        elif lowered not in STRUCTURAL_HEADERS:
            headers.append((name, value))

    return headers, custom_message_id


def _metadata(request: EmailRequest) -> dict[str, str]:
    metadata: dict[str, str] = {}
    raw_metadata = request.Metadata or {}
    if len(raw_metadata) > MAX_METADATA_KEYS:
        raise InvalidEmailRequest(f"Metadata may have at most {MAX_METADATA_KEYS} keys.")
    for key, value in raw_metadata.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidEmailRequest(f"Metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters: '{key[:40]}'.")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidEmailRequest(f"Metadata value for '{key}' must be a string, not an object or a list.")
        text = str(value)
        if len(text) > MAX_METADATA_VALUE_CHARS:
            raise InvalidEmailRequest(f"Metadata values must be at most {MAX_METADATA_VALUE_CHARS} characters: '{key}'.")
        metadata[key] = text

    return metadata


def _track_links(request: EmailRequest) -> str | None:
    if request.TrackLinks is None:
        return None
    track_links = next((t.value for t in TrackLinks if t.value.lower() == request.TrackLinks.lower()), None)
    if track_links is None:
        raise InvalidEmailRequest("TrackLinks must be one of None, HtmlAndText, HtmlOnly, TextOnly.")

    return track_links


def refuse_unstorable(request: EmailRequest) -> None:
    """Text PostgreSQL cannot hold (a NUL, a lone surrogate such as JSON's "\\ud800") is refused here, naming its
    field, before anything echoes or stores it: one bad message must not reach a transaction it shares."""
    field = unstorable_field(request.model_dump(exclude_none=True))
    if field is not None:
        raise InvalidEmailRequest(
            f"The '{field[:200] or 'message'}' field contains a NUL character or a lone surrogate (text that is not valid Unicode), "
            "which cannot be stored."
        )


def from_json(request: EmailRequest, *, template: TemplateReference | None = None) -> OutgoingMessage:
    """Read one message; every problem with a field becomes ErrorCode 300.

    A templated message (`template` given) has no Subject or body yet: `pipeline.render` fills them at accept time.
    """
    refuse_unstorable(request)
    sender = _sender(request)

    to = _addresses(request.To, "To")
    cc = _addresses(request.Cc, "Cc")
    bcc = _addresses(request.Bcc, "Bcc")
    if not (to or cc or bcc):
        raise InvalidEmailRequest("Zero recipients specified.")
    reply_to = _addresses(request.ReplyTo, "ReplyTo")

    subject = request.Subject or ""
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidEmailRequest(f"The 'Subject' must be at most {MAX_SUBJECT_CHARS} characters.")
    if "\r" in subject or "\n" in subject:
        subject = " ".join(subject.splitlines())
    tag = (request.Tag or "").strip()
    if len(tag) > MAX_TAG_CHARS or "\r" in tag or "\n" in tag:
        raise InvalidEmailRequest(f"The 'Tag' must be one line of at most {MAX_TAG_CHARS} characters.")

    text_body = request.TextBody if request.TextBody else None
    html_body = request.HtmlBody if request.HtmlBody else None
    if text_body is None and html_body is None and template is None:
        raise InvalidEmailRequest("Provide either email TextBody or HtmlBody or both.")
    for body, name in ((text_body, "TextBody"), (html_body, "HtmlBody")):
        if body is not None and len(body.encode()) > MAX_BODY_BYTES:
            raise InvalidEmailRequest(f"The '{name}' must be at most 5 MB.")

    headers, custom_message_id = _headers(request)

    metadata = _metadata(request)
    attachments = [_attachment(raw, i) for i, raw in enumerate(request.Attachments or [])]

    track_links = _track_links(request)

    stream = (request.MessageStream or DEFAULT_MESSAGE_STREAM).strip().lower()
    send_at = parse_send_at(request.SendAt) if request.SendAt is not None and request.SendAt.strip() else None
    return OutgoingMessage(
        source=MessageSource.API,
        sender=sender,
        from_header=request.From or "",  # _sender refused an empty one
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        tag=tag,
        text_body=text_body,
        html_body=html_body,
        headers=headers,
        message_id=custom_message_id,
        metadata=metadata,
        attachments=attachments,
        attachment_names=[a.name for a in attachments],
        message_stream=stream,
        track_opens=request.TrackOpens,
        track_links=track_links,
        template=template,
        send_at=send_at,
    )


def from_templated_json(request: TemplatedEmailRequest) -> OutgoingMessage:
    """Read one `/email/withTemplate` message: the template reference (1101, 1120, 1123), then every `/email` field rule."""
    if request.Subject is not None or request.HtmlBody is not None or request.TextBody is not None:
        # Postmark's sentence; it refuses an empty string there too.
        raise PostmarkError(
            ErrorCode.TEMPLATE_FIELD_NOT_ALLOWED,
            "Neither 'TextBody', 'HtmlBody', or 'Subject' may be specified when using a template for the email.",
        )
    template_id = request.TemplateId or None  # postmark-php sends `TemplateId: 0` beside an alias
    alias = (request.TemplateAlias or "").strip() or None
    if template_id is None and alias is None:
        raise PostmarkError(ErrorCode.TEMPLATE_NOT_FOUND, "A 'TemplateId' or a 'TemplateAlias' is required to send with a template.")
    if request.TemplateModel is None:
        raise PostmarkError(ErrorCode.TEMPLATE_FIELD_REQUIRED, "A 'TemplateModel' is required when using a template to send an email.")
    reference = TemplateReference(
        template_id=template_id, alias=alias, model=request.TemplateModel, inline_css=request.InlineCss is not False
    )
    return from_json(request, template=reference)
