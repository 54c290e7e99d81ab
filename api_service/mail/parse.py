"""Raw messages in and out with one email policy.

Every module that reads stored or received MIME parses it here, under `POLICY`: the standard library's
compat32 rules with CRLF line ends and no refolding. Not `policy.default`: its structured header parser
takes seconds on hostile headers (a long run of encoded words or nested comments) where compat32 keeps a
header as the string it read; the domains that need a header's meaning decode it themselves
(`decoded`, `addresses`). Generating with the same policy writes header lines back as they came.

The header block helpers work on bytes without parsing at all: a message whose body is megabytes only
pays for its head.
"""

from __future__ import annotations

import io
import re
from email import message_from_bytes
from email.errors import HeaderParseError
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

POLICY = compat32.clone(linesep="\r\n", max_line_length=None)

HEADER_END = re.compile(rb"\r\n\r\n|\n\n")
_HEAD_PARSER = BytesHeaderParser(policy=POLICY)


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


def parse(raw: bytes) -> Message:
    """The whole message, headers as the strings they came as."""
    return message_from_bytes(raw, policy=POLICY)


def parse_head(raw: bytes) -> Message:
    """The header block only (the body is not parsed)."""
    return _HEAD_PARSER.parsebytes(raw)


def generate(message: Message) -> bytes:
    """The message as bytes again, header lines unfolded as they came, never a mangled "From " line."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(message)
    return out.getvalue()


def decoded(value: object) -> str:
    """A header value with its RFC 2047 encoded words decoded; left as it is where they are malformed."""
    text = str(value)
    if "=?" in text:
        try:
            return str(make_header(decode_header(text)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):
            return text
    return text


def _charset(part: Message) -> str:
    charset = part.get_content_charset() or "us-ascii"
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(_charset(part), errors="replace")


def text_bodies(raw: bytes) -> tuple[str, str]:
    """(the first text/plain, the first text/html) part that is not an attachment; "" where there is none."""
    found: dict[str, str] = {}
    for part in parse(raw).walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        subtype = part.get_content_subtype() if part.get_content_maintype() == "text" else ""
        if subtype in ("plain", "html") and subtype not in found:
            found[subtype] = _text(part)
    return found.get("plain", ""), found.get("html", "")
