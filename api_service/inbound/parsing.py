"""Parsing received mail into Postmark's inbound webhook payload: pure functions, bytes in, typed result out.

The message is parsed with the standard library's `email` package under the compat32 policy, not
`policy.default`: the default policy's structured header parser takes minutes and gigabytes (and
raises MemoryError) on a few megabytes of hostile Content-Type or encoded words, and raises
IndexError on some address lists. compat32 only splits strings; encoded words and addresses are
then read with the linear `decode_words` and `email.utils.getaddresses`, and MIME parameter
headers are cut to 8 KiB before the standard library parses them (its parameter splitting is
quadratic). Hostile input (garbage bytes, truncated MIME, malformed or huge headers, unknown
charsets, absurd nesting) never raises: what can be read is returned.

The forms follow Postmark's documented payload and the official clients:

- `From` is the sender's bare address, `FromName` its display name; `To`, `Cc`, `Bcc` and
  `ReplyTo` are the parsed addresses rendered `"Name" <email>` (bare email without a name) and
  joined with ", ", as Postmark renders them.
- `Bcc`/`BccFull` hold the envelope recipients (the original one and the transaction's others at
  the same server) that neither To nor Cc names (a Bcc header, rare on received mail, is read too).
- `MessageID` is the id the receiver gives the message (`message_id`, a new UUID by default); the
  sender's Message-ID header stays in `Headers`, as in Postmark's payloads.
- `Date` is the Date header as written; `Subject` and display names have encoded words decoded.
- `Headers` lists every header in order, unfolded and decoded, except those with a field of their
  own (From, To, Cc, Bcc, Reply-To, Subject, Date) and the top-level Content-Type and
  Content-Transfer-Encoding, which describe the MIME structure that TextBody, HtmlBody and
  Attachments already unpack.
- `TextBody`/`HtmlBody` are the message's text/plain and text/html bodies (the standard library's
  `get_body` rule, so the first of each outside attachments); every other leaf part is an attachment,
  including inline images (with `ContentID`), calendar parts and attached messages (message/rfc822,
  re-serialised, named "ForwardedMessage.eml" when they have no name).
- `StrippedTextReply` is TextBody without the message it quotes, found with mail-parser-reply's
  header patterns (see `replies.py` for the choice of library and how it is used).
- `Tag` is empty: inbound messages carry none.
"""

from __future__ import annotations

import base64
import binascii
import math
import quopri
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses
from functools import partial

from api_service.inbound.replies import stripped_text_reply
from api_service.inbound.text import clean, decode_bytes, decode_words, header_text, unfold
from shared.schemas.inbound import InboundAddress, InboundAttachment, InboundHeader, InboundMessage

OWN_FIELDS = frozenset({"from", "to", "cc", "bcc", "reply-to", "subject", "date"})
STRUCTURE_HEADERS = frozenset({"content-type", "content-transfer-encoding"})
ENCLOSED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
UNNAMED_MESSAGE = "ForwardedMessage.eml"

MIME_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})
MAX_MIME_PARAMETER_HEADER = 8 * 1024  # a 255-character CJK file name in RFC 2231 form takes about 2.3 KiB


class _RawPolicy(Compat32):
    """compat32, but a header fetched with `get` stays the str the parser stored (raw 8-bit bytes as
    surrogates, which `clean` reads as UTF-8 or Windows-1252) instead of a Header object that turns
    them into '?'; MIME parameter headers are cut to a size the standard library parses quickly."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if name.lower() in MIME_PARAMETER_HEADERS and len(value) > MAX_MIME_PARAMETER_HEADER:
            return value[:MAX_MIME_PARAMETER_HEADER]
        return value


_POLICY = _RawPolicy()
_PARSER = BytesParser(policy=_POLICY)
# Re-serialising an attached message: header lines as they came (no refolding), in MIME's CRLF.
_SERIALIZE = _POLICY.clone(linesep="\r\n", max_line_length=None)
_SPAM_NUMBER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)(?![\d.])")
_SPAM_STATUS_SCORE = re.compile(r"\b(?:score|hits)=([+-]?\d+(?:\.\d+)?)(?![\d.])", re.IGNORECASE)


def split_mailbox_hash(address: str) -> tuple[str, str]:
    """Plus addressing: ("hash+ticket42@x") -> ("hash@x", "ticket42").

    The hash is what follows the first '+' of the local part; an address without one (or with
    nothing before its '+') is returned unchanged with an empty hash.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    base, plus, mailbox_hash = local.partition("+")
    if not plus or not base:
        return address, ""
    return f"{base}{at}{domain}", mailbox_hash


def parse_inbound(
    raw: bytes,
    *,
    original_recipient: str,
    other_recipients: Sequence[str] = (),
    message_stream: str = "inbound",
    include_raw: bool = False,
    message_id: str | None = None,
) -> InboundMessage:
    """The inbound webhook payload for a received message.

    `original_recipient` is the envelope recipient (RCPT TO) the message was received for; its plus
    part is `MailboxHash`. `other_recipients` are the transaction's other envelope recipients at the
    same server (see `for_recipients`). `message_id` is the id the receiver stores the message under
    (a new UUID when not given). `include_raw` adds `RawEmail`, the message as text. Never raises.
    """
    parsed = parse_for_recipients(raw, message_stream=message_stream, include_raw=include_raw)
    return for_recipients(parsed, recipients=[original_recipient, *other_recipients], message_id=message_id)


def parse_for_recipients(raw: bytes, *, message_stream: str = "inbound", include_raw: bool = False) -> InboundMessage:
    """The payload of a message before it is addressed to one of its recipients (no
    OriginalRecipient, MailboxHash or MessageID yet): parse once, then `for_recipient` for each."""
    message = _parse(raw)
    from_list = _addresses(message, "from")
    sender = from_list[0] if from_list else InboundAddress(Email="", Name="", MailboxHash="")
    to, cc, bcc = _addresses(message, "to"), _addresses(message, "cc"), _addresses(message, "bcc")
    reply_to = _addresses(message, "reply-to")
    text_part, html_part = _body(message, "plain"), _body(message, "html")
    text_body = _part_text(text_part)
    return InboundMessage(
        From=sender.Email,
        FromName=sender.Name,
        FromFull=sender,
        To=_render(to),
        ToFull=to,
        Cc=_render(cc),
        CcFull=cc,
        Bcc=_render(bcc),
        BccFull=bcc,
        OriginalRecipient="",
        ReplyTo=_render(reply_to),
        Subject=header_text(_first(message, "subject")),
        MessageID="",
        MessageStream=clean(message_stream),
        MailboxHash="",
        Date=clean(unfold(_first(message, "date"))),
        TextBody=text_body,
        HtmlBody=_part_text(html_part),
        StrippedTextReply=stripped_text_reply(text_body),
        Tag="",
        Headers=_headers(message),
        Attachments=_attachments(message, skip=[part for part in (text_part, html_part) if part is not None]),
        RawEmail=clean(raw.decode("utf-8", "surrogateescape")) if include_raw else None,
    )


def for_recipient(parsed: InboundMessage, *, original_recipient: str, message_id: str | None = None) -> InboundMessage:
    """`for_recipients` for a message received for one envelope recipient."""
    return for_recipients(parsed, recipients=[original_recipient], message_id=message_id)


def for_recipients(parsed: InboundMessage, *, recipients: Sequence[str], message_id: str | None = None) -> InboundMessage:
    """`parse_for_recipients`' payload as one server received it in one SMTP transaction, for one or
    more envelope recipients (plus addresses of one inbound hash, addresses at its InboundDomain).

    As Postmark posts such a message once: the first recipient is the OriginalRecipient and gives
    the MailboxHash; every recipient keeps its own MailboxHash in ToFull, CcFull or BccFull, where
    those that neither To nor Cc (nor a Bcc header) names are added to Bcc, in envelope order.
    The id it is stored under is `message_id`."""
    cleaned = [clean(r).strip() for r in recipients]
    cleaned = [r for r in cleaned if r]
    bcc = list(parsed.BccFull)
    named = {a.Email.lower() for a in (*parsed.ToFull, *parsed.CcFull, *bcc)}
    for recipient in cleaned:
        if recipient.lower() not in named:
            named.add(recipient.lower())
            bcc.append(_address(recipient, ""))
    original = cleaned[0] if cleaned else ""
    return parsed.model_copy(
        update={
            "Bcc": _render(bcc),
            "BccFull": bcc,
            "OriginalRecipient": original,
            "MessageID": clean(message_id) if message_id is not None else str(uuid.uuid4()),
            "MailboxHash": split_mailbox_hash(original)[1],
        }
    )


def spam_score(message_headers: list[InboundHeader]) -> float | None:
    """The spam score a filter wrote: X-Spam-Score, else the score= (or older hits=) of X-Spam-Status.

    The first such header counts (the topmost, added last, by the receiving side). None when
    there is none or it holds no finite number.
    """
    for name, pattern in (("x-spam-score", _SPAM_NUMBER), ("x-spam-status", _SPAM_STATUS_SCORE)):
        for header in message_headers:
            if header.Name.strip().lower() != name:
                continue
            match = pattern.search(header.Value)
            if match is not None:
                value = float(match.group(1))
                if math.isfinite(value):
                    return value
    return None


def _parse(raw: bytes) -> Message:
    try:
        message = _PARSER.parsebytes(raw)
    except Exception:  # e.g. RecursionError on absurdly nested multiparts: keep the headers
        message = _PARSER.parsebytes(raw, headersonly=True)
    return message


def _raw_values(message: Message, name: str) -> list[str]:
    return [value for key, value in message.raw_items() if key.lower() == name]


def _first(message: Message, name: str) -> str:
    values = _raw_values(message, name)
    return values[0] if values else ""


def _address(email: str, name: str) -> InboundAddress:
    email, name = clean(email).strip(), clean(name).strip()
    return InboundAddress(Email=email, Name=name, MailboxHash=split_mailbox_hash(email)[1])


def _addresses(message: Message, name: str) -> list[InboundAddress]:
    found: list[InboundAddress] = []
    for raw_value in _raw_values(message, name):
        # Display names are decoded after parsing: a decoded name may hold a comma or a quote.
        found += [_address(email, decode_words(display)) for display, email in _address_pairs(raw_value) if email.strip()]
    return found


def _address_pairs(raw_value: str) -> list[tuple[str, str]]:
    try:
        return getaddresses([clean(unfold(raw_value))])
    except Exception:  # e.g. RecursionError on absurdly nested comments: nothing readable
        return []


def _render(addresses: list[InboundAddress]) -> str:
    rendered = []
    for address in addresses:
        if address.Name:
            quoted = address.Name.replace("\\", "\\\\").replace('"', '\\"')
            rendered.append(f'"{quoted}" <{address.Email}>')
        else:
            rendered.append(address.Email)
    return ", ".join(rendered)


def _headers(message: Message) -> list[InboundHeader]:
    return [
        InboundHeader(Name=clean(name).strip(), Value=header_text(value))
        for name, value in message.raw_items()
        if name.strip().lower() not in OWN_FIELDS | STRUCTURE_HEADERS
    ]


def _body(message: Message, kind: str) -> Message | None:
    """The first text/<kind> part that is not an attachment, searched as `EmailMessage.get_body`
    does: depth first, but only the root part (its `start`, else its first) of a multipart/related."""
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_disposition() == "attachment":
            continue
        maintype, _, subtype = part.get_content_type().partition("/")
        if maintype == "text":
            if subtype == kind:
                return part
            continue
        if maintype != "multipart" or not part.is_multipart():
            continue
        subparts = _subparts(part)
        if subtype == "related" and subparts:
            start = _parameter(partial(part.get_param, "start"))
            root = next((sub for sub in subparts if isinstance(start, str) and sub.get("content-id") == start), subparts[0])
            subparts = [root]
        stack.extend(reversed(subparts))
    return None


def _parameter(read: Callable[[], object]) -> str | None:
    """A MIME parameter, or None when the standard library cannot read it: its RFC 2231 decoding
    raises TypeError on a parameter given both plain and continued ("a*=x; a*0*=y") and
    ValueError when a NUL in the charset reaches the codec lookup."""
    try:
        value = read()
    except (TypeError, ValueError, LookupError):
        return None
    return value if isinstance(value, str) else None


def _part_text(part: Message | None) -> str:
    if part is None:
        return ""
    try:
        data = _part_bytes(part)
    except Exception:  # the standard library's content decoders (uuencode, say) may raise on damage
        return ""
    return decode_bytes(data, _parameter(part.get_content_charset))


def _part_bytes(part: Message) -> bytes:
    """The decoded content of a leaf part; for a message/* part, the enclosed message."""
    if part.get_content_maintype() == "message":
        return _enclosed_bytes(part)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _enclosed_bytes(part: Message) -> bytes:
    serialized = part.as_bytes(policy=_SERIALIZE)
    if part.keys():
        _head, _blank, data = serialized.partition(b"\r\n\r\n")
    else:
        data = serialized.removeprefix(b"\r\n")
    # message/* may only be 7bit/8bit/binary (RFC 2046 5.2.1), but some senders encode it anyway.
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(data.split()))
        except (binascii.Error, ValueError):
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def _filename(part: Message) -> str:
    """The RFC 2231 or plain file name, encoded words decoded too (Outlook and Gmail write them)."""
    filename = _parameter(part.get_filename)
    return header_text(filename) if filename else ""


def _leaves(message: Message) -> Iterator[Message]:
    """Every non-multipart part, depth first in order; message/* parts are leaves (attached mail)."""
    stack: list[Message] = [message]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            stack.extend(reversed(_subparts(part)))
        else:
            yield part


def _subparts(part: Message) -> list[Message]:
    # Only for a multipart part: get_payload() of a non-multipart one decodes it, and can raise.
    payload = part.get_payload()
    return [sub for sub in payload if isinstance(sub, Message)] if isinstance(payload, list) else []


def _attachments(message: Message, *, skip: list[Message]) -> list[InboundAttachment]:
    found = []
    for part in _leaves(message):
        if any(part is body for body in skip):
            continue
        attachment = _attachment(part)
        if attachment is not None:
            found.append(attachment)
    return found


def _attachment(part: Message) -> InboundAttachment | None:
    """The part as an attachment; None for an empty unnamed part (broken MIME) or unreadable content."""
    try:
        content = _part_bytes(part)
    except Exception:  # the standard library's decoders and generator may raise on a damaged part
        return None
    name = _filename(part)
    content_type = clean(part.get_content_type())
    if not name and content_type in ENCLOSED_MESSAGE_TYPES:
        name = UNNAMED_MESSAGE
    if not name and not content:
        return None
    content_id = clean(unfold(_first(part, "content-id"))).strip().removeprefix("<").removesuffix(">").strip()
    return InboundAttachment(
        Name=name,
        Content=base64.b64encode(content).decode("ascii"),
        ContentType=content_type,
        ContentLength=len(content),
        ContentID=content_id,
    )
