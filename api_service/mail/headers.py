"""Header fields written to RFC 5322, RFC 2047 and RFC 2231: pure functions, str in, str out.

Every line stays within 78 characters where the text allows it and always within 998 (RFC 5322
§2.1.1); every encoded word stays within 75 characters (RFC 2047 §2) and holds whole characters
(§5); a parameter too long for one line is split into RFC 2231 continuations. Text that merely
looks like an encoded word is encoded, so that a reader shows it as it was written.
"""

from __future__ import annotations

import base64
import re

CRLF = "\r\n"
SOFT_LIMIT = 78
HARD_LIMIT = 998
MAX_ENCODED_WORD = 75
_PREFIX, _SUFFIX = "=?utf-8?b?", "?="
# Base64 of at most this many bytes keeps a word within 75 characters: 10 + 4 * 45 / 3 + 2 = 72.
_WORD_BYTES = 45
_PIECES = re.compile(r"[ \t]*[^ \t]+|[ \t]+$")
# RFC 2231 attribute-char: what a parameter value may hold without percent-encoding.
_ATTRIBUTE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~")
_TSPECIALS = frozenset('()<>@,;:\\"/[]?= \t')
# RFC 5322 specials: a display name holding one must be quoted.
_SPECIALS = frozenset('()<>[]:;@\\,."')


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 B-encoded UTF-8 words, each within 75 characters and of whole characters."""
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8", "surrogatepass")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(_PREFIX + base64.b64encode(chunk).decode("ascii") + _SUFFIX)
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(_PREFIX + base64.b64encode(chunk).decode("ascii") + _SUFFIX)
    return words


def _plain(text: str) -> bool:
    """Printable ASCII that no reader could take for an encoded word."""
    return text.isascii() and "=?" not in text and all(" " <= c <= "~" or c == "\t" for c in text)


def fold(name: str, tokens: list[str]) -> str:
    """`Name: token token …`, breaking before a token (which keeps its leading white space) when a
    line would pass 78 characters. Tokens are never split; the caller keeps each under 998."""
    lines = [f"{name}:"]
    for index, token in enumerate(tokens):
        piece = token if token[:1] in (" ", "\t") else " " + token
        # The first token stays on the field's own line: a value that starts on a continuation
        # line is read back with a leading space by some parsers (Python's among them).
        if index and len(lines[-1]) + len(piece) > SOFT_LIMIT and piece.strip(" \t"):
            lines.append(piece)
        else:
            lines[-1] += piece
    return CRLF.join(lines)


def unstructured(name: str, value: str) -> str:
    """An unstructured field (Subject, a custom header): folded at its own white space when it is
    plain ASCII; else, or when a word would pass 998 characters, in encoded words. White space at
    either end is not kept (readers drop it)."""
    value = value.strip(" \t")
    if not value:
        return f"{name}:"
    if _plain(value):
        header = fold(name, _PIECES.findall(value))
        if all(len(line) <= HARD_LIMIT for line in header.split(CRLF)):
            return header
    return fold(name, encoded_words(value))


def phrase(name: str) -> list[str]:
    """A display name as tokens for `fold`: as it is, quoted when it must be, or encoded words."""
    if not name:
        return []
    if _plain(name) and len(name) <= 64 and name == name.strip(" \t") and "  " not in name:
        if not any(c in _SPECIALS for c in name):
            return name.split(" ")
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(name)


def mailbox(name: str, address: str) -> list[str]:
    return [*phrase(name), f"<{address}>"] if name else [address]


def address_list(header: str, mailboxes: list[tuple[str, str]]) -> str:
    """`To: a, "B" <b@…>, …` with each mailbox folded on its own and a line per mailbox."""
    tokens: list[str] = []
    for index, (name, address) in enumerate(mailboxes):
        parts = mailbox(name, address)
        if index < len(mailboxes) - 1:
            parts[-1] += ","
        tokens.extend(parts)
    return fold(header, tokens)


def parameter(name: str, value: str) -> list[str]:
    """`name="value"`, or RFC 2231 continuations (`name*0*=utf-8''…`, `name*1*=…`) when the value is
    not plain ASCII or would make too long a line. A list of `;`-separated parameter strings."""
    if _plain(value) and len(name) + len(value) + 3 <= 60:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return [f'{name}="{escaped}"']
    # Each character percent-encoded on its own, so that no segment ends inside a character.
    pieces = [c if c in _ATTRIBUTE_CHARS else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")) for c in value]
    segments: list[str] = [""]
    for piece in pieces:
        # Each parameter on a line of its own: " " + name*N*= + segment + ";" within 78.
        prefix = len(f"{name}*{len(segments) - 1}*=") + (len("utf-8''") if len(segments) == 1 else 0)
        if segments[-1] and prefix + len(segments[-1]) + len(piece) > SOFT_LIMIT - 2:
            segments.append("")
        segments[-1] += piece
    first = f"{name}*0*=utf-8''{segments[0]}"
    return [first, *(f"{name}*{index}*={segment}" for index, segment in enumerate(segments[1:], start=1))]


def with_parameters(name: str, value: str, params: list[str]) -> str:
    """`Name: value; p1; p2`, one parameter per line when they do not fit on one."""
    single = f"{name}: {value}" + "".join(f"; {p}" for p in params)
    if len(single) <= SOFT_LIMIT:
        return single
    return f"{name}: {value}" + "".join(f";{CRLF} {p}" for p in params)


def token_safe(text: str) -> bool:
    """A MIME token (RFC 2045): a type, a subtype."""
    return bool(text) and text.isascii() and all(" " < c < "\x7f" and c not in _TSPECIALS for c in text)
