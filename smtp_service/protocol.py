"""Checks on the raw DATA bytes: pure functions, no I/O."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime

_LINE_SPLIT = re.compile(rb"(\r\n|\r|\n)")
_BARE = re.compile(rb"\r\n|\r|\n")


def has_smuggled_end(data: bytes) -> bool:
    """A '.' line next to a bare CR or LF: an end of data for a lenient server (SMTP smuggling).

    aiosmtpd ends DATA only at CRLF.CRLF, but the message may be relayed to servers that also
    accept LF.LF, where the rest would become a second, forged message.
    """
    parts = _LINE_SPLIT.split(data)
    # parts alternates line, separator, line, separator, …
    for index in range(2, len(parts) - 1, 2):
        if parts[index] == b"." and (parts[index - 1] != b"\r\n" or parts[index + 1] != b"\r\n"):
            return True
    return False


def normalise_line_endings(data: bytes) -> bytes:
    """Every bare CR or LF becomes CRLF, as RFC 5321 requires on the wire."""
    return _BARE.sub(b"\r\n", data)


# A header line as the standard library's parser reads one (email.feedparser.headerRE): a field
# name and a colon, a continuation, or an mbox "From " line. The first other line starts the body.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_SPAM_FIELD = re.compile(rb"^x-spam(-[\041-\071\073-\176]*)?:", re.IGNORECASE)
_SAFE_HELO = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


def strip_spam_headers(data: bytes) -> bytes:
    """The message without its X-Spam and X-Spam-* header fields (continuation lines included).

    A sender can write any X-Spam-Score it likes; only a filter the operator trusts may set one.
    The header section ends where the standard library's parser ends it, so what is removed is
    exactly what a parser of the message would read as those fields; the body is never touched.
    Expects CRLF line endings (see `normalise_line_endings`).
    """
    lines = data.split(b"\r\n")
    kept: list[bytes] = []
    dropping = False
    for index, line in enumerate(lines):
        if line == b"" or not _HEADER_LINE.match(line):
            return b"\r\n".join([*kept, *lines[index:]])
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        if line.startswith((b":", b"From ")):
            # Lines the parser skips (no field name, a misplaced mbox line): the field before
            # them goes on, so its continuation lines still follow its fate.
            kept.append(line)
            continue
        dropping = bool(_SPAM_FIELD.match(line))
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept)


def received_header(
    *, helo: str, peer_ip: str, hostname: str, protocol: str, queue_id: str, recipient: str | None, when: datetime
) -> bytes:
    """The trace field an MTA puts on top of a message it accepts (RFC 5321 4.4), CRLF-terminated."""
    helo = _SAFE_HELO.sub("", helo)[:255] or "unknown"
    peer = _SAFE_HELO.sub("", peer_ip)[:64] or "unknown"
    host = _SAFE_HELO.sub("", hostname)[:255] or "postgate"
    line = f"Received: from {helo} ([{peer}])\r\n\tby {host} (Postgate) with {protocol} id {queue_id}"
    if recipient is not None and not any(c in recipient for c in "\r\n<>"):
        line += f"\r\n\tfor <{recipient}>"
    return f"{line};\r\n\t{format_datetime(when)}\r\n".encode("ascii", "replace")
