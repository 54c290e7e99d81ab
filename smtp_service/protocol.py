"""Checks on the raw DATA bytes: pure functions, no I/O."""

from __future__ import annotations

import re

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
