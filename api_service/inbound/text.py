"""Turning the bytes and header text of received mail into clean str: charsets, encoded words, NULs.

Everything here is total: any input gives a str, never an exception. The result never holds a NUL
(PostgreSQL text cannot store one) nor a lone surrogate (UTF-8, JSON and asyncpg reject them).
"""

from __future__ import annotations

import codecs
import re
from email import policy

# Labels seen in mail that Python does not know, or knows only as a narrower charset than the
# one senders really use (the WHATWG Encoding Standard makes the same substitutions).
_ALIASES = {
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc-cn": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "big5": "big5hkscs",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
# Python codecs that decode bytes to str but are no mail charset: a hostile label must not pick them.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "mbcs", "oem"})
_LOGICAL_SUFFIX = re.compile(r"^(iso-8859-\d+)-[ie]$")  # iso-8859-8-i: Hebrew, logical order
_SURROGATES = re.compile("[\udc80-\udcff]+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when the label names no text encoding."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    label = _LOGICAL_SUFFIX.sub(r"\1", label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in its declared charset; when the label is unknown or wrong, UTF-8, then the declared
    charset (or Windows-1252, the usual truth behind a bad Western label) with replacement characters.
    """
    codec = codec_for(charset)
    for candidate in (codec, "utf-8"):
        if candidate is None:
            continue
        try:
            return clean(data.decode(candidate))
        except (UnicodeError, LookupError, ValueError):
            continue
    fallback = codec if codec not in (None, "ascii", "utf-8") else "cp1252"
    try:
        return clean(data.decode(fallback or "cp1252", errors="replace"))
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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def unfold(value: str) -> str:
    """A header value on one line (RFC 5322 unfolding; a stray CR or LF becomes a space)."""
    return _LINE_BREAKS.sub(" ", _FOLD.sub("", value)).strip()


def header_text(value: str) -> str:
    """A raw header value unfolded and cleaned, with RFC 2047 encoded words decoded."""
    text = clean(unfold(value))
    if "=?" not in text:
        return text
    try:
        return clean(str(policy.default.header_factory("x-unstructured", text)))
    except Exception:  # the header parser has raised on hostile input; the raw text is still readable
        return text
