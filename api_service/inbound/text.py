"""Turning the bytes and header text of received mail into clean str: charsets, encoded words, NULs.

Everything here is total: any input gives a str, never an exception. The result never holds a NUL
(PostgreSQL text cannot store one) nor a lone surrogate (UTF-8, JSON and asyncpg reject them).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

# Labels seen in mail that Python does not know.
_ALIASES = {
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
# Where senders label text with a charset narrower than the one they used (Windows code pages
# above all), the wider one is tried when the declared one fails, as the WHATWG Encoding Standard
# reads these labels. ISO-8859-1 never fails, so Windows-1252 replaces it outright.
_WIDER = {
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
}
_REPLACED = {"iso8859-1": "cp1252"}
# Python codecs that decode bytes to str but are no mail charset: a hostile label must not pick them.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "mbcs", "oem"})
_LOGICAL_SUFFIX = re.compile(r"^(iso-8859-\d+)-[ie]$")  # iso-8859-8-i: Hebrew, logical order
_SURROGATES = re.compile("[\udc80-\udcff]+")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# RFC 2047 encoded word; the charset may carry an RFC 2231 language ("utf-8*en").
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def codecs_for(charset: str | None) -> list[str]:
    """The Python codecs to try for a MIME charset label, in order: none when the label names no
    text encoding, else the declared one (or what replaces it) and the wider one senders mean by it."""
    if not charset:
        return []
    label = charset.strip().strip("\"'").lower()
    label = _LOGICAL_SUFFIX.sub(r"\1", _ALIASES.get(label, label))
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return []
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return []
    name = _REPLACED.get(info.name, info.name)
    return [name, _WIDER[name]] if name in _WIDER else [name]


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in its declared charset, or in the wider one its senders mean by that label; when those
    fail or the label is unknown, UTF-8; failing that, the (wider) declared charset, or Windows-1252
    (the usual truth behind a wrong Western label), with replacement characters."""
    candidates = codecs_for(charset)
    for codec in [*candidates, "utf-8"]:
        try:
            return clean(data.decode(codec))
        except (UnicodeError, LookupError, ValueError):
            continue
    fallback = candidates[-1] if candidates and candidates[-1] not in ("ascii", "utf-8") else "cp1252"
    try:
        return clean(data.decode(fallback, errors="replace"))
    except (UnicodeError, LookupError, ValueError):
        return clean(data.decode("cp1252", errors="replace"))


def _undo_surrogates(match: re.Match[str]) -> str:
    raw = match.group().encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def clean(text: str) -> str:
    """Without NULs, and with raw 8-bit bytes the parser kept as surrogates read as UTF-8
    (RFC 6532), else Windows-1252; any other lone surrogate becomes U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SURROGATES.search(text):
        text = _SURROGATES.sub(_undo_surrogates, text)
    return _ANY_SURROGATE.sub("\ufffd", text)


def unfold(value: str) -> str:
    """A header value on one line (RFC 5322 unfolding; a stray CR or LF becomes a space)."""
    return _LINE_BREAKS.sub(" ", _FOLD.sub("", value)).strip()


def header_text(value: str) -> str:
    """A raw header value unfolded and cleaned, with RFC 2047 encoded words decoded."""
    return decode_words(clean(unfold(value)))


def decode_words(text: str) -> str:
    """Text with its RFC 2047 encoded words decoded, in linear time whatever the input.

    Adjacent encoded words (only whitespace between them) join without that whitespace
    (RFC 2047 6.2), and their bytes are decoded together when they share a charset, so a
    character split across two words survives. A word that cannot be decoded stays as written;
    an unknown charset falls back as `decode_bytes` does. (The default policy's header parser does
    the same job but takes minutes and gigabytes on a hostile header of a few megabytes.)
    """
    if "=?" not in text:
        return text
    pieces: list[str] = []
    run: list[bytes] = []
    run_charset = ""
    position = 0

    def flush() -> None:
        if run:
            pieces.append(decode_bytes(b"".join(run), run_charset))
            run.clear()

    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        charset, encoding, encoded = match.groups()
        charset = charset.split("*", 1)[0]
        data = _decode_q(encoded) if encoding in "qQ" else _decode_b(encoded)
        if not (run and not gap.strip()):
            flush()
            pieces.append(gap)
        if data is None:
            flush()
            pieces.append(match.group())
        else:
            if run and charset.lower() != run_charset.lower():
                flush()
            run_charset = charset
            run.append(data)
        position = match.end()
    flush()
    pieces.append(text[position:])
    return "".join(pieces)


def _decode_q(encoded: str) -> bytes:
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), encoded.replace("_", " ").encode("utf-8"))


def _decode_b(encoded: str) -> bytes | None:
    data = _NOT_BASE64.sub(b"", encoded.encode("ascii", "ignore"))
    if len(data) % 4 == 1:  # a lone trailing character carries no byte
        data = data[:-1]
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
