"""StrippedTextReply: the new text of a reply, without the message it quotes.

The quote is found with the header patterns of **mail-parser-reply** (alfonsrv/mail-parser-reply,
MIT, no dependencies, released through 2025, runs on 3.11): Gmail's and Apple Mail's
"On … wrote:" (also wrapped over two lines, also inside `>` quotes), Outlook's "From: … Sent: …"
block with or without its underscore line, "-----Original Message-----", and the same in a dozen
languages. The alternatives were worse fits: email-reply-parser (Zapier/GitHub port) has had no
release since 2020, talon none since 2017, and quotequail (maintained) misses Outlook's header
block when no separator line precedes it and pulls in lxml.

We take the library's compiled pattern rather than its `read()`: `read()` rewrites the text (it
strips every line and deletes separator lines), so its output is not the sender's text, and its
patterns backtrack quadratically on long lines. So the pattern runs on a bounded probe copy (the
first lines, each stripped, overlong ones blanked), and the sender's own text is cut at the line
where the quote starts. A trailing run of `>`-quoted lines (a reply with no attribution line) and
separator lines are dropped too; `>` lines between new paragraphs (an inline answer) are kept.
"""

from __future__ import annotations

import re
from functools import cache

from mailparser_reply import EmailMessage

# Every real language the library knows ("david" is one groupware's header, not a language).
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "sv", "da", "pl", "cs", "ja", "ko", "zh")
# The quote starts near the top of a reply and a header is never a long line; the bounds keep the
# library's backtracking patterns (quadratic in the line length) to a fraction of a second.
SCAN_CHARS = 64_000
SCAN_LINE_CHARS = 300
_PLACEHOLDER = "."
_SEPARATOR = re.compile(r"^\s*(?:[_-]{10,}|[-_]*\s*(?:original message|forwarded message)\s*[-_]*)\s*$", re.IGNORECASE)


@cache
def _header_pattern() -> re.Pattern[str]:
    pattern: re.Pattern[str] = EmailMessage(text="", languages=list(LANGUAGES)).HEADER_REGEX
    return pattern


def _quote_start(lines: list[str]) -> int | None:
    """The index of the line where the quoted message starts, or None."""
    probe_lines: list[str] = []
    budget = SCAN_CHARS
    for line in lines:
        budget -= len(line) + 1
        if budget < 0:
            break
        probe_lines.append(line.strip() if len(line) <= SCAN_LINE_CHARS else _PLACEHOLDER)
    probe = "\n".join(probe_lines)
    match = _header_pattern().search(probe)
    if match is None:
        return None
    start = match.start()
    index = probe.count("\n", 0, start)
    if probe.startswith("\n", start):  # the Outlook pattern starts at the line break before "From:"
        index += 1
    return index


def _is_trailing_noise(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith(">") or bool(_SEPARATOR.match(stripped))


def stripped_text_reply(text: str) -> str:
    """The text above the quoted message, trailing blank, quoted and separator lines removed.

    A message with no quote is returned whole (less trailing whitespace); one that starts with
    the quote (a bare forward) gives "".
    """
    lines = text.split("\n")
    start = _quote_start(lines)
    kept = lines if start is None else lines[:start]
    while kept and _is_trailing_noise(kept[-1]):
        kept.pop()
    while kept and not kept[0].strip():
        del kept[0]
    return "\n".join(kept).rstrip()
