"""Which parts of a message tracking may touch, and how attached messages go out byte for byte.

Tracking never descends into a `message/*` part (`message/rfc822`, `message/global`, ...): an
attached message is someone else's mail, its links are not ours to track and a changed byte breaks
its own DKIM signature. `walk_own_parts` stops at such parts.

Generating a parsed message again writes an attached message from its parsed form, which is not
always the bytes it came as (a header's spacing, a blank line before a base64 body). So before a
copy is generated, `keep_attached` swaps every attached message for a placeholder and remembers its
original bytes (found by splitting the raw multipart bodies as the standard library's parser does);
`Kept.restore` puts them back. When those bytes cannot be matched with certainty (a multipart
without its closing delimiter, or bytes that, parsed alone, do not give the part the parser saw),
the caller leaves the copy's bodies as stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from api_service.mail.parse import generate, parse

# Deeper multipart nesting above an attached message is not split (the copy keeps its bodies as stored).
MAX_NESTING = 50
# A header line as the standard library's feed parser tells one (email.feedparser.headerRE).
HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
BLANK_LINE = (b"\r\n", b"\n", b"\r")
LINE_END = re.compile(rb"(\r\n|\r|\n)\Z")


def is_attached_message(part: Message) -> bool:
    return part.get_content_maintype() == "message"


def _subparts(part: Message) -> list[Message]:
    """A multipart's parts: the very list the message holds (replacing an item replaces the part)."""
    payload: Any = part.get_payload()
    return payload if isinstance(payload, list) else []


def walk_own_parts(message: Message) -> Iterator[Message]:
    """Every part depth first, as `Message.walk`, but never inside an attached `message/*` part."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        if part.is_multipart() and not is_attached_message(part):
            stack.extend(reversed(_subparts(part)))


def _body(raw: bytes) -> bytes:
    """What follows a part's header block, as the feed parser cuts it."""
    at = 0
    for line in raw.splitlines(keepends=True):
        if not HEADER_LINE.match(line):
            return raw[at + len(line) :] if line in BLANK_LINE else raw[at:]
        at += len(line)
    return b""


def _split(body: bytes, boundary: str) -> list[bytes] | None:
    """A multipart body's parts, each without the line break that belongs to the next delimiter;
    None without a closing delimiter."""
    try:
        delimiter = re.compile(rb"--" + re.escape(boundary.encode("ascii", "surrogateescape")) + rb"(--)?[ \t]*(\r\n|\r|\n)?\Z")
    except UnicodeError:
        return None
    chunks: list[bytes] = []
    current: list[bytes] | None = None
    for line in body.splitlines(keepends=True):
        match = delimiter.match(line)
        if match is None:
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            chunks.append(LINE_END.sub(b"", b"".join(current), count=1))
        if match.group(1):
            return chunks
        current = []
    return None


def _holds_message(part: Message) -> bool:
    return any(is_attached_message(p) for p in walk_own_parts(part) if p is not part)


@dataclass(slots=True)
class Kept:
    """Attached messages swapped for placeholders, and their bytes to put back."""

    marker: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    def restore(self, generated: bytes) -> bytes:
        if not self.chunks:
            return generated
        # A placeholder part has no header fields, so it is written as a blank line and its text.
        pattern = re.compile(b"\r\n" + re.escape(self.marker) + rb"-(\d+)-")
        return pattern.sub(lambda m: self.chunks[int(m.group(1))], generated)


def _locate(part: Message, raw: bytes, found: list[tuple[list[Message], int, bytes]], depth: int) -> bool:
    boundary = part.get_boundary()
    subparts = _subparts(part)
    if depth > MAX_NESTING or boundary is None or not subparts:
        return False
    chunks = _split(_body(raw), boundary)
    if chunks is None or len(chunks) != len(subparts):
        return False
    for index, (sub, chunk) in enumerate(zip(subparts, chunks, strict=True)):
        if is_attached_message(sub):
            found.append((subparts, index, chunk))
        elif sub.is_multipart() and _holds_message(sub) and not _locate(sub, chunk, found, depth + 1):
            return False
    return True


def keep_attached(raw: bytes, message: Message) -> Kept | None:
    """Swap the attached messages of `message` (parsed from `raw`) for placeholders. None when
    their bytes cannot be matched; an empty `Kept` when there are none."""
    if is_attached_message(message) or not _holds_message(message):
        return Kept()
    found: list[tuple[list[Message], int, bytes]] = []
    if not _locate(message, raw, found, 0):
        return None
    if any(generate(parse(chunk)) != generate(siblings[index]) for siblings, index, chunk in found):
        return None  # the split does not agree with the parser
    marker = b"PGKEEP" + secrets.token_hex(12).encode()
    while marker in raw:  # pragma: no cover - 96 random bits
        marker = b"PGKEEP" + secrets.token_hex(12).encode()
    kept = Kept(marker=marker)
    for number, (siblings, index, chunk) in enumerate(found):
        placeholder = Message()
        placeholder.set_payload(f"{marker.decode()}-{number}-")
        siblings[index] = placeholder
        kept.chunks.append(chunk)
    return kept
