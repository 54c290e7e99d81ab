"""Per-recipient rewriting of a stored message: an open pixel, tracked links, the unsubscribe
placeholder and header fields. Pure functions, bytes in, bytes out.

The message is parsed with the compat32 policy and generated again with the same policy and no
refolding, which gives back the bytes it was given (see the property tests; the top-level header
block is copied as it came); only the text/plain and text/html parts that change are re-encoded (quoted-printable when a line would
pass 998 octets or 8-bit text would go out as 7bit; base64 parts stay base64). Attachments and
inline images are written back untouched, and so are attached messages (`message/*` parts are
never entered: `tracking.parts`).

Every step is linear in the size of the text: the output is built once from its pieces, the HTML
parser is never asked to re-read an unfinished tail, and a body part gets at most
`MAX_TRACKED_LINKS_PER_PART` links tracked (the ones after it are left as they are, not refused).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from urllib.parse import urlsplit

from api_service.mail.parse import generate, header_fields, parse, parse_head, split_head
from api_service.tracking.parts import Kept, keep_attached, walk_own_parts
from shared.constants import ClickLocation

CRLF = "\r\n"
LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_LINE = 998
UNSUBSCRIBE_PLACEHOLDER = re.compile(r"\{\{\{\s*pm:unsubscribe\s*\}\}\}", re.IGNORECASE)
NO_TRACK_ATTRIBUTE = "data-pm-no-track"
# A URL in plain text ends at whitespace or a character that cannot be in one; punctuation that
# ends a sentence is not part of it.
TEXT_URL = re.compile(r"https?://[^\s<>\"'\x00-\x1f\x7f]+", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?'\")]}"
TRACKED_SCHEMES = frozenset({"http", "https"})
# A longer URL is left as it is: sealed into a token it would make a URL browsers and proxies cut.
MAX_TRACKED_URL = 2048
# Links tracked in one body part (each costs a token per recipient); the ones after it stay as they are.
MAX_TRACKED_LINKS_PER_PART = 2000

LinkRewriter = Callable[[str, ClickLocation], str]


@dataclass(slots=True)
class Plan:
    """What one recipient's copy gets."""

    pixel_url: str | None = None
    track_html: bool = False
    track_text: bool = False
    link: LinkRewriter | None = None
    unsubscribe_url: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def touches_bodies(self) -> bool:
        return bool(self.pixel_url or ((self.track_html or self.track_text) and self.link) or self.unsubscribe_url)


def trackable(url: str) -> bool:
    """Only web links are tracked: not mailto:, tel:, anchors or the unsubscribe placeholder."""
    if len(url) > MAX_TRACKED_URL or "\x00" in url or UNSUBSCRIBE_PLACEHOLDER.search(url):
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in TRACKED_SCHEMES and bool(parts.netloc)


# --- HTML ----------------------------------------------------------------------------------------


class _Scanner(HTMLParser):
    """Where the `<a>` start tags and the last `</body>` are, as offsets into the text.

    Use `scan`: it feeds the text and never closes the parser. What the parser leaves unread at the
    end is an unfinished tag, comment or script (no link a browser would show), and closing would
    read that tail again from each of its `<`: quadratic (`"<a " * 8000` takes seconds).
    """

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.anchors: list[tuple[int, str, list[tuple[str, str | None]]]] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append((self._offset(), self.get_starttag_text() or "", attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def scan(text: str) -> _Scanner:
    scanner = _Scanner(text)
    # The stdlib parser gives up on a malformed `<![` section by raising: what follows is left alone.
    with contextlib.suppress(AssertionError):
        scanner.feed(text)
    return scanner


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end) span replaced, built once from its pieces (edits in order;
    one that overlaps the previous is dropped)."""
    pieces: list[str] = []
    at = 0
    for start, end, replacement in edits:
        if start < at:
            continue
        pieces.append(text[at:start])
        pieces.append(replacement)
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


def start_tag(name: str, attrs: list[tuple[str, str | None]], *, self_closing: bool = False) -> str:
    """A start tag written from parsed attributes (values escaped, always double-quoted)."""
    parts = [f"<{name}"]
    for key, value in attrs:
        parts.append(f" {key}" if value is None else f' {key}="{html.escape(value, quote=True)}"')
    return "".join(parts) + (" />" if self_closing else ">")


def _tracked_anchor(raw: str, attrs: list[tuple[str, str | None]], link: LinkRewriter) -> str | None:
    names = [k for k, _ in attrs]
    if NO_TRACK_ATTRIBUTE in names or "href" not in names:
        return None
    index = names.index("href")  # browsers follow the first href
    href = attrs[index][1]
    if href is None or not trackable(href):
        return None
    rewritten = list(attrs)
    rewritten[index] = ("href", link(href.strip(), ClickLocation.HTML))
    return start_tag("a", rewritten, self_closing=raw.rstrip().endswith("/>"))


def pixel_tag(url: str) -> str:
    return start_tag(
        "img",
        [
            ("src", url),
            ("width", "1"),
            ("height", "1"),
            ("border", "0"),
            ("alt", ""),
            ("style", "display:block;width:1px;height:1px;border:0"),
        ],
        self_closing=True,
    )


def rewrite_html(text: str, *, link: LinkRewriter | None, pixel_url: str | None, unsubscribe_url: str | None) -> str:
    """Track the `<a href>` links (when `link` is given), add the pixel before `</body>` (or at
    the end), then fill the unsubscribe placeholder (never tracked)."""
    scanner = scan(text)
    edits = _anchor_edits(text, scanner, link) if link is not None else []
    if pixel_url is not None:
        at = scanner.body_end if scanner.body_end is not None else len(text)
        edits.append((at, at, pixel_tag(pixel_url)))
    text = _splice(text, sorted(edits, key=lambda edit: edit[0]))
    if unsubscribe_url is not None:
        text = UNSUBSCRIBE_PLACEHOLDER.sub(lambda _: html.escape(unsubscribe_url, quote=True), text)
    return text


def _anchor_edits(text: str, scanner: _Scanner, link: LinkRewriter) -> list[tuple[int, int, str]]:
    """The tracked `<a>` tags (the first `MAX_TRACKED_LINKS_PER_PART`), as (start, end, new tag)."""
    edits: list[tuple[int, int, str]] = []
    for offset, raw, attrs in scanner.anchors:
        if len(edits) >= MAX_TRACKED_LINKS_PER_PART:
            break
        if not text.startswith(raw, offset):
            continue  # the parser's position and the text disagree: leave this tag alone
        tag = _tracked_anchor(raw, attrs, link)
        if tag is not None:
            edits.append((offset, offset + len(raw), tag))
    return edits


def _unchanged(url: str, location: ClickLocation) -> str:
    return url


def count_html_links(text: str) -> int:
    return len(_anchor_edits(text, scan(text), _unchanged))


# --- plain text -----------------------------------------------------------------------------------


def _text_urls(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in TEXT_URL.finditer(text):
        if len(spans) >= MAX_TRACKED_LINKS_PER_PART:
            break
        url = match.group().rstrip(TRAILING_PUNCTUATION)
        if trackable(url):
            spans.append((match.start(), match.start() + len(url)))
    return spans


def rewrite_text(text: str, *, link: LinkRewriter | None, unsubscribe_url: str | None) -> str:
    if link is not None:
        text = _splice(text, [(start, end, link(text[start:end], ClickLocation.TEXT)) for start, end in _text_urls(text)])
    if unsubscribe_url is not None:
        text = UNSUBSCRIBE_PLACEHOLDER.sub(lambda _: unsubscribe_url, text)
    return text


# --- MIME -----------------------------------------------------------------------------------------


def _is_body_part(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    return not part.is_multipart() and part.get_content_type() in ("text/plain", "text/html") and disposition != "attachment"


def _charset(part: Message) -> str | None:
    """The part's charset when it writes ASCII as ASCII (so inserted URLs need no care)."""
    name = part.get_content_charset() or "us-ascii"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    try:
        return codec.name if "<a href=/>".encode(codec.name) == b"<a href=/>" else None
    except (UnicodeError, LookupError):
        return None


def _read(part: Message) -> tuple[str, str] | None:
    """(text, charset), or None for a part that cannot be read back exactly."""
    charset = _charset(part)
    payload = part.get_payload(decode=True)
    if charset is None or not isinstance(payload, bytes):
        return None
    try:
        return payload.decode(charset), charset
    except UnicodeDecodeError:
        return None


def _write(part: Message, text: str, charset: str) -> None:
    data = CRLF.join(LINE_BREAK.split(text)).encode(charset)
    encoding = str(part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if encoding == "base64":
        payload = base64.encodebytes(data).decode("ascii").replace("\n", CRLF).rstrip(CRLF)
    elif encoding == "quoted-printable" or not (data.isascii() and all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))):
        encoding = "quoted-printable"
        payload = CRLF.join(LINE_BREAK.split(binascii.b2a_qp(data, istext=True).decode("ascii")))
    else:
        payload = data.decode("ascii")
    part.set_payload(payload)
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", encoding)
    elif encoding != "7bit":
        part["Content-Transfer-Encoding"] = encoding


BARE_LINE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def _bodies(raw: bytes, plan: Plan) -> bytes:
    head, _ = split_head(raw)
    if BARE_LINE_BREAK.search(head):
        # Neither intake path stores one (the JSON adapter refuses it, the SMTP gateway turns it
        # into CRLF), and generated again it could end the header block early: left alone.
        return raw
    message = parse(raw)
    bodies = [part for part in walk_own_parts(message) if _is_body_part(part)]
    kept = keep_attached(raw, message) if bodies else Kept()
    if kept is None:
        return raw  # an attached message whose bytes cannot be matched: the copy keeps its bodies as stored
    changed = False
    pixel = plan.pixel_url
    for part in bodies:
        read = _read(part)
        if read is None:
            continue
        text, charset = read
        if part.get_content_type() == "text/html":
            new = rewrite_html(text, link=plan.link if plan.track_html else None, pixel_url=pixel, unsubscribe_url=plan.unsubscribe_url)
            pixel = None  # one pixel per copy, in the first HTML part
        else:
            new = rewrite_text(text, link=plan.link if plan.track_text else None, unsubscribe_url=plan.unsubscribe_url)
        if new != text:
            _write(part, new, charset)
            changed = True
    if not changed:
        return raw
    # The top-level header block goes out as it came (the generator may respace an odd field);
    # only its transfer encoding can have changed, when the message is a single text part.
    _, body = split_head(kept.restore(generate(message)))
    encoding = message.get("Content-Transfer-Encoding")
    if encoding is not None and encoding != parse_head(head).get("Content-Transfer-Encoding"):
        head = set_headers(head, [("Content-Transfer-Encoding", str(encoding))])
    return head + body


def set_headers(raw: bytes, headers: list[tuple[str, str]]) -> bytes:
    """Put these header fields at the top, replacing any of the same names already there.

    A value may hold `\\r\\n ` folds (written as given); header bytes are otherwise untouched.
    """
    if not headers:
        return raw
    names = {name.lower().encode() for name, _ in headers}
    head, body = split_head(raw)
    kept = [item for item in header_fields(head) if item.split(b":", 1)[0].strip().lower() not in names]
    added = [f"{name}: {value}\r\n".encode() for name, value in headers]
    return b"".join(added + kept) + body


def personalise_mime(raw: bytes, plan: Plan) -> bytes:
    """One recipient's copy of a stored message."""
    if plan.touches_bodies:
        raw = _bodies(raw, plan)
    return set_headers(raw, plan.headers)


def count_tracked_links(raw: bytes, *, html_links: bool, text_links: bool) -> int:
    """How many links a copy of this message gets rewritten (for the stats)."""
    found = 0
    message = parse(raw)
    for part in walk_own_parts(message):
        if not _is_body_part(part):
            continue
        read = _read(part)
        if read is None:
            continue
        if part.get_content_type() == "text/html" and html_links:
            found += count_html_links(read[0])
        elif part.get_content_type() == "text/plain" and text_links:
            found += len(_text_urls(read[0]))
    return found
