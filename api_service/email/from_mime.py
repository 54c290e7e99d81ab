"""The MIME adapter: a message received over SMTP (its bytes and envelope) → `OutgoingMessage`.

Pure functions, bytes in, typed result out. Problems are collected, not raised: over SMTP the
message has been received already, and Postmark reports what is wrong with it as SMTPApiError
bounces (see `service.accept`).
"""

from __future__ import annotations

import re
from email.message import Message

from api_service.core.dates import parse_send_at
from api_service.email.message import OutgoingMessage
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.mail.addresses import AddressError, Mailbox, normalise_email, parse_address_list, parse_mailbox
from api_service.mail.parse import decoded, header_fields, parse, parse_head, split_head
from api_service.models import MessageSource
from shared.constants import (
    DEFAULT_MESSAGE_STREAM,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_TAG_CHARS,
    SEND_AT_HEADER,
    TrackLinks,
)
from shared.schemas.base import storable, unstorable

CONTROL_PREFIX = b"x-pm-"
FIELD_START = re.compile(rb"^[!-9;-~]+:")


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


_UNFOLD = re.compile(r"\r?\n[ \t]")


def _text(value: object) -> str:
    """A header value unfolded, with RFC 2047 encoded words decoded."""
    return decoded(_UNFOLD.sub(" ", str(value)))


def _addresses(message: Message, name: str, problems: list[PostmarkError]) -> list[Mailbox]:
    found: list[Mailbox] = []
    for value in message.get_all(name) or []:
        try:
            found += parse_address_list(_text(value))
        except AddressError as exc:
            problems.append(InvalidEmailRequest(f"Invalid '{name}' address: '{exc}'."))
    return found


def _attachment_names(raw: bytes, content_type: str) -> list[str]:
    if not content_type.lower().lstrip().startswith("multipart/"):
        return []
    lowered = raw.lower()
    if b"filename" not in lowered and b"name=" not in lowered and b"name*" not in lowered:
        return []  # no part names a file: nothing to parse the body for
    names = []
    for part in parse(raw).walk():
        filename = part.get_filename()
        if filename:
            names.append(_text(filename))
    return names


def _envelope(rcpt_tos: list[str]) -> tuple[list[str], list[str]]:
    """(valid envelope recipients, once each; the RCPT TOs that are no address)."""
    recipients: list[str] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for rcpt in rcpt_tos:
        email = normalise_email(rcpt)
        if email is None:
            invalid.append(rcpt.replace("\x00", ""))
        elif email.lower() not in seen:
            seen.add(email.lower())
            recipients.append(email)
    return recipients, invalid


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL."""
    return text.replace("\x00", "")


def _sender(message: Message, problems: list[PostmarkError]) -> Mailbox | None:
    from_values = message.get_all("From") or []
    if not from_values:
        problems.append(InvalidEmailRequest("The message has no 'From' header."))
    elif len(from_values) > 1:
        # Only one could be checked against the sender signatures; a reader may show the other.
        problems.append(InvalidEmailRequest("The message has more than one 'From' header."))
    else:
        try:
            return parse_mailbox(_text(from_values[0]))
        except AddressError:
            problems.append(InvalidEmailRequest(f"Invalid 'From' address: '{_clean(_text(from_values[0]))}'."))
    return None


def _checked_metadata(metadata: dict[str, str], problems: list[PostmarkError]) -> dict[str, str]:
    """The same limits as the JSON API's Metadata; what breaks them is bounced, and not stored."""
    if len(metadata) > MAX_METADATA_KEYS:
        problems.append(InvalidEmailRequest(f"Metadata may have at most {MAX_METADATA_KEYS} keys."))
    for key, value in list(metadata.items()):
        if len(key) > MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
            problems.append(
                InvalidEmailRequest(
                    f"X-PM-Metadata-* keys must be at most {MAX_METADATA_KEY_CHARS} and values at most "
                    f"{MAX_METADATA_VALUE_CHARS} characters: '{key[:40]}'."
                )
            )
            del metadata[key]
    if len(metadata) > MAX_METADATA_KEYS:
        metadata = dict(list(metadata.items())[:MAX_METADATA_KEYS])
    return metadata


def _mailbox_texts(*mailboxes: Mailbox | None) -> list[str]:
    return [text for m in mailboxes if m is not None for text in (m.name, m.email)]


def _storable_mailbox(mailbox: Mailbox) -> Mailbox:
    return Mailbox(name=storable(mailbox.name), email=storable(mailbox.email))


def _refuse_unstorable(parsed: OutgoingMessage) -> None:
    """Text PostgreSQL cannot hold (a lone surrogate, from 8-bit bytes or an encoded word in a codec such
    as unicode_escape; a NUL) is a problem naming where it was: the message is bounced (SMTPApiError)
    on its own, never failing the transaction it shares. The texts keep U+FFFD in its place, so that
    the bounce itself can be stored."""
    texts = {
        "From": [parsed.from_header, *_mailbox_texts(parsed.sender)],
        "To": _mailbox_texts(*parsed.to),
        "Cc": _mailbox_texts(*parsed.cc),
        "Subject": [parsed.subject],
        "Message-ID": [parsed.message_id or ""],
        "X-PM-Tag": [parsed.tag],
        "X-PM-Message-Stream": [parsed.message_stream],
        "X-PM-Metadata": [*parsed.metadata, *parsed.metadata.values()],
        "attachment file name": parsed.attachment_names,
        "MAIL FROM": [parsed.envelope_from],
        "RCPT TO": [*(parsed.envelope_recipients or []), *parsed.invalid_recipients],
    }
    bad = [where for where, found in texts.items() if any(unstorable(text) for text in found)]
    if not bad:
        return
    parsed.problems.append(
        InvalidEmailRequest(
            f"The message's {', '.join(bad)} holds text that cannot be stored (a NUL character or a lone surrogate: not valid Unicode)."
        )
    )
    parsed.from_header = storable(parsed.from_header)
    parsed.sender = _storable_mailbox(parsed.sender) if parsed.sender else None
    parsed.to = [_storable_mailbox(m) for m in parsed.to]
    parsed.cc = [_storable_mailbox(m) for m in parsed.cc]
    parsed.subject = storable(parsed.subject)
    parsed.message_id = storable(parsed.message_id) if parsed.message_id else None
    parsed.tag = storable(parsed.tag)
    parsed.message_stream = storable(parsed.message_stream)
    parsed.metadata = {storable(k): storable(v) for k, v in parsed.metadata.items()}
    parsed.attachment_names = [storable(n) for n in parsed.attachment_names]
    parsed.envelope_from = storable(parsed.envelope_from)
    if parsed.envelope_recipients is not None:
        parsed.envelope_recipients = [storable(r) for r in parsed.envelope_recipients]
    parsed.invalid_recipients = [storable(r) for r in parsed.invalid_recipients]


def from_mime(raw: bytes, *, mail_from: str, rcpt_tos: list[str]) -> OutgoingMessage:
    """Read the headers that matter and the X-PM-* control headers Postmark honours.

    Headers are read with the compat32 parser, which is several times faster than the default
    policy's full parse; the body is parsed only for a multipart message's attachment names.
    The envelope decides who gets the message, whatever To and Cc say (Bcc lives only there).
    """
    message = parse_head(raw)
    problems: list[PostmarkError] = []
    sender = _sender(message, problems)
    message_id = message.get("Message-ID")
    recipients, invalid = _envelope(rcpt_tos)
    parsed = OutgoingMessage(
        source=MessageSource.SMTP,
        sender=sender,
        from_header=(f"{sender.name} <{sender.email}>" if sender.name else sender.email) if sender else "",
        to=_addresses(message, "To", problems),
        cc=_addresses(message, "Cc", problems),
        subject=_clean(_text(message.get("Subject", ""))),
        mime=raw,
        envelope_from=_clean(mail_from)[:255],
        envelope_recipients=recipients,
        invalid_recipients=invalid,
        problems=problems,
    )
    client_message_id = _text(message_id).strip() if message_id else None
    keep_id = False
    metadata: dict[str, str] = {}
    for name, value in message.items():
        lowered = name.lower()
        if not lowered.startswith("x-pm-"):
            continue
        text = _clean(_text(value).strip())
        if lowered == "x-pm-tag":
            parsed.tag = text[:MAX_TAG_CHARS]
        elif lowered == "x-pm-message-stream":
            parsed.message_stream = text.lower() or DEFAULT_MESSAGE_STREAM
        elif lowered.startswith("x-pm-metadata-"):
            if len(metadata) > MAX_METADATA_KEYS:
                continue  # already too many: the rest need not be read (nor numbered)
            key = _clean(name[len("x-pm-metadata-") :])
            suffix = 1
            while key in metadata:
                suffix += 1
                key = f"{_clean(name[len('x-pm-metadata-') :])}{suffix}"
            metadata[key] = text
        elif lowered == "x-pm-trackopens":
            parsed.track_opens = text.lower() == "true"
        elif lowered == "x-pm-tracklinks":
            parsed.track_links = next((t.value for t in TrackLinks if t.value.lower() == text.lower()), None)
            if parsed.track_links is None:
                problems.append(InvalidEmailRequest(f"Invalid X-PM-TrackLinks value: '{text[:100]}'."))
        elif lowered == "x-pm-keepid":
            keep_id = text.lower() == "true"
        elif lowered == "x-pm-send-at" and text:
            try:
                parsed.send_at = parse_send_at(text, field_name=SEND_AT_HEADER)
            except PostmarkError as exc:
                problems.append(exc)
    metadata = _checked_metadata(metadata, problems)
    parsed.metadata = metadata
    # Postmark replaces the client's Message-ID unless X-PM-KeepID: true asks to keep it.
    parsed.message_id = client_message_id if keep_id and client_message_id else None
    parsed.attachment_names = [_clean(n) for n in _attachment_names(raw, str(message.get("Content-Type", "")))]
    _refuse_unstorable(parsed)
    return parsed
