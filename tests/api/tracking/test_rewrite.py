"""Per-recipient rewriting, proved against the standard library's MIME and HTML parsers."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from html.parser import HTMLParser

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from api_service.mail.addresses import Mailbox
from api_service.mail.mime import AttachmentPart, MimeInput, build_mime
from api_service.mail.parse import POLICY, split_head
from api_service.tracking.rewrite import (
    BARE_LINE_BREAK,
    Plan,
    count_tracked_links,
    personalise_mime,
    rewrite_html,
    rewrite_text,
    set_headers,
)
from shared.constants import ClickLocation

PIXEL = "https://track.example/t/o/PIXEL"
UNSUBSCRIBE = "https://track.example/t/u/UNSUB"
TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=300)
URLS = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z]{1,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_~/-]{0,30}(\?[a-z]=[A-Za-z0-9%]{0,10}(&[a-z]=[0-9]{1,4})?)?", fullmatch=True),
)


def tracked(url: str, location: ClickLocation) -> str:
    return f"https://track.example/t/c/{location.value}/{len(url)}"


def full_plan() -> Plan:
    return Plan(
        pixel_url=PIXEL,
        track_html=True,
        track_text=True,
        link=tracked,
        unsubscribe_url=UNSUBSCRIBE,
        headers=[("List-Unsubscribe", f"<{UNSUBSCRIBE}>,\r\n <mailto:u@b.example?subject=x>"), ("List-Unsubscribe-Post", "x")],
    )


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    links = draw(st.lists(URLS, max_size=4))
    words = draw(TEXTS)
    html_body = draw(st.none() | st.just(words + "".join(f'<a href="{html.escape(u)}">{i}</a>' for i, u in enumerate(links))))
    text_body = draw(st.none() | st.just(words + " ".join(links) + " {{{ pm:unsubscribe }}}"))
    attachments = draw(
        st.lists(
            st.builds(
                AttachmentPart,
                name=st.from_regex(r"[a-z]{1,8}\.(pdf|png|txt)", fullmatch=True),
                content=st.binary(max_size=2000),
                content_type=st.sampled_from(["application/pdf", "image/png", "text/plain"]),
                content_id=st.none() | st.just("img1@example"),
            ),
            max_size=3,
        )
    )
    return build_mime(
        MimeInput(
            message_id="<m@example.org>",
            date=datetime(2026, 1, 2, tzinfo=UTC),
            sender=Mailbox("Sender", "sender@example.org"),
            to=[Mailbox("", "to@example.net")],
            cc=[],
            reply_to=[],
            subject=draw(TEXTS),
            text_body=text_body if html_body is not None or text_body is not None else "x",
            html_body=html_body,
            attachments=attachments,
        )
    )


def non_body_parts(raw: bytes) -> list[tuple[str, bytes]]:
    """Every leaf that is not a text body: its headers and its payload exactly as written."""
    found = []
    for part in message_from_bytes(raw, policy=POLICY).walk():
        if part.is_multipart():
            continue
        disposition = str(part.get("Content-Disposition") or "")
        if disposition or part.get_content_type() not in ("text/plain", "text/html"):
            found.append((str(part.items()), str(part.get_payload()).encode("utf-8", "surrogateescape")))
    return found


def defects(message: EmailMessage) -> list[str]:
    return [type(defect).__name__ for part in message.walk() for defect in part.defects]


def regenerate(raw: bytes) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=POLICY).flatten(message_from_bytes(raw, policy=POLICY))
    return out.getvalue()


class TestMime:
    @settings(max_examples=150, deadline=None)
    @given(messages())
    def test_parsing_and_generating_again_gives_the_same_body_bytes(self, raw: bytes) -> None:
        assume(not BARE_LINE_BREAK.search(split_head(raw)[0]))  # such a head is left alone, see rewrite._bodies
        assert split_head(regenerate(raw))[1] == split_head(raw)[1]

    @settings(max_examples=150, deadline=None)
    @given(messages())
    def test_the_header_block_goes_out_as_it_came(self, raw: bytes) -> None:
        out = personalise_mime(raw, Plan(pixel_url=PIXEL, track_text=True, track_html=True, link=tracked, unsubscribe_url=UNSUBSCRIBE))
        head, out_head = split_head(raw)[0], split_head(out)[0]
        if b"multipart/" in head:
            assert out_head == head

    @settings(max_examples=150, deadline=None)
    @given(messages())
    def test_a_personalised_copy_parses_keeps_attachments_and_line_limits(self, raw: bytes) -> None:
        out = personalise_mime(raw, full_plan())
        parsed = message_from_bytes(out, _class=EmailMessage, policy=policy.default)
        before = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        assert defects(parsed) == defects(before)
        assert all(len(line) <= 998 for line in out.split(b"\r\n"))
        assert non_body_parts(out) == non_body_parts(raw)
        assert [p.get_content() for p in parsed.iter_attachments()] == [p.get_content() for p in before.iter_attachments()]
        assert parsed["List-Unsubscribe-Post"] == "x"
        html_part = parsed.get_body(preferencelist=("html",))
        if html_part is not None and html_part.get_content_type() == "text/html":
            content = html_part.get_content()
            assert content.count(PIXEL) == 1
            assert "pm:unsubscribe" not in content

    @settings(max_examples=100, deadline=None)
    @given(messages())
    def test_nothing_to_do_changes_nothing(self, raw: bytes) -> None:
        assert personalise_mime(raw, Plan()) == raw
        assert personalise_mime(raw, Plan(link=tracked)) == raw

    @settings(max_examples=100, deadline=None)
    @given(messages())
    def test_count_matches_the_links_rewritten(self, raw: bytes) -> None:
        seen: list[str] = []

        def recording(url: str, location: ClickLocation) -> str:
            seen.append(url)
            return tracked(url, location)

        personalise_mime(raw, Plan(track_html=True, track_text=True, link=recording))
        assert count_tracked_links(raw, html_links=True, text_links=True) == len(seen)

    def test_quoted_printable_and_8bit_parts_are_re_encoded_validly(self) -> None:
        long_line = "é" * 600 + " https://example.com/x"
        raw = (
            "From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' + long_line + "\r\n"
        ).encode()
        out = personalise_mime(raw, Plan(track_text=True, link=tracked))
        assert b"Content-Transfer-Encoding: quoted-printable" in out
        assert out.isascii()
        parsed = message_from_bytes(out, _class=EmailMessage, policy=policy.default)
        before = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        assert parsed.get_content() == before.get_content().replace("https://example.com/x", "https://track.example/t/c/Text/21")

    def test_a_head_with_a_bare_line_break_is_left_alone(self) -> None:
        raw = b"From: a@example.org\r\nSubject: x\ny\r\n\r\nhttps://example.com/a\r\n"
        assert personalise_mime(raw, Plan(track_text=True, link=tracked)) == raw

    def test_a_part_in_an_unknown_charset_is_left_alone(self) -> None:
        raw = b'From: a@example.org\r\nContent-Type: text/html; charset="x-unknown"\r\n\r\n<a href="https://example.com">x</a>\r\n'
        assert personalise_mime(raw, Plan(track_html=True, link=tracked, pixel_url=PIXEL)) == raw

    def test_headers_are_replaced_not_duplicated(self) -> None:
        raw = b"List-Unsubscribe: <mailto:old@example.org>\r\nFrom: a@example.org\r\n\r\nbody\r\n"
        out = set_headers(raw, [("List-Unsubscribe", "<https://new.example>")])
        parsed: Message = message_from_bytes(out)
        assert parsed.get_all("List-Unsubscribe") == ["<https://new.example>"]
        assert out.endswith(b"From: a@example.org\r\n\r\nbody\r\n")


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[list[tuple[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(attrs)


def anchors(text: str) -> list[list[tuple[str, str | None]]]:
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    return parser.anchors


ATTRIBUTE_VALUES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
ATTRIBUTES = st.lists(
    st.tuples(st.sampled_from(["class", "title", "style", "id", "target", "data-x", "data-pm-no-track"]), ATTRIBUTE_VALUES),
    max_size=4,
    unique_by=lambda a: a[0],
)
QUOTES = st.sampled_from(['"{}"', "'{}'"])


@st.composite
def anchor_html(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    attrs = draw(ATTRIBUTES)
    href = draw(URLS | st.just("mailto:x@example.org") | st.just("#top") | st.just("{{{ pm:unsubscribe }}}"))
    position = draw(st.integers(0, len(attrs)))
    attrs = [*attrs[:position], ("href", href), *attrs[position:]]
    quote = draw(QUOTES)
    written = " ".join(f"{name}={quote.format(html.escape(value, quote=True))}" for name, value in attrs)
    before, after = draw(TEXTS.map(html.escape)), draw(TEXTS.map(html.escape))
    return f"<p>{before}<a {written}>link</a>{after}</p>", attrs


class TestHtml:
    @settings(max_examples=300)
    @given(anchor_html())
    def test_only_the_href_changes_as_the_stdlib_parser_reads_it(self, case: tuple[str, list[tuple[str, str]]]) -> None:
        text, attrs = case
        out = rewrite_html(text, link=tracked, pixel_url=None, unsubscribe_url=None)
        [before] = anchors(text)
        [after] = anchors(out)
        href = dict(attrs)["href"]
        should_track = href.startswith("https://") and "data-pm-no-track" not in dict(attrs)
        expected = [(k, tracked(v or "", ClickLocation.HTML) if k == "href" and should_track else v) for k, v in before]
        assert after == expected
        assert out.startswith("<p>") and out.endswith("</p>")  # noqa: PT018 - one property

    def test_pixel_goes_before_body_end_and_links_in_comments_stay(self) -> None:
        text = '<html><body><!-- <a href="https://hidden.example">x</a> --><a href="https://a.example/">a</a></body></html>'
        out = rewrite_html(text, link=tracked, pixel_url=PIXEL, unsubscribe_url=None)
        assert out.endswith(
            f'<img src="{PIXEL}" width="1" height="1" border="0" alt="" style="display:block;width:1px;height:1px;border:0" /></body></html>'
        )
        assert "https://hidden.example" in out
        assert "https://a.example/" not in out

    def test_unsubscribe_placeholder_is_filled_not_tracked(self) -> None:
        text = '<a href="{{{ pm:unsubscribe }}}">Unsubscribe</a> {{{pm:unsubscribe}}}'
        out = rewrite_html(text, link=tracked, pixel_url=None, unsubscribe_url=UNSUBSCRIBE + "?a=1&b=2")
        assert out == '<a href="https://track.example/t/u/UNSUB?a=1&amp;b=2">Unsubscribe</a> https://track.example/t/u/UNSUB?a=1&amp;b=2'


class TestText:
    def test_urls_lose_trailing_punctuation_and_others_stay(self) -> None:
        text = "See (https://example.com/a). Or mailto:a@b.c, ftp://x.example, or https://example.com/b?x=1!"
        out = rewrite_text(text, link=tracked, unsubscribe_url=None)
        assert out == "See (https://track.example/t/c/Text/21). Or mailto:a@b.c, ftp://x.example, or https://track.example/t/c/Text/25!"

    @given(TEXTS)
    def test_text_without_links_is_unchanged(self, text: str) -> None:
        if "http" not in text.lower():
            assert rewrite_text(text, link=tracked, unsubscribe_url=None) == text


@dataclass(frozen=True)
class Submitted:
    subject: str
    text: str
    links: list[str]
    labels: list[str]
    encoding: str
    attachments: list[tuple[bytes, str]]

    def mime(self) -> bytes:
        """What mail programs submit over SMTP: the stdlib's own MIME (quoted-printable, base64 or
        8-bit text, RFC 2231 names), as the SMTP gateway stores it. Built outside the strategy:
        the stdlib draws boundaries with `random`."""
        message = EmailMessage()
        message["From"] = "a@example.org"
        message["To"] = "b@example.net"
        message["Subject"] = self.subject
        message.set_content(self.text + " " + " ".join(self.links), cte=self.encoding)
        anchors = "".join(f'<a href="{html.escape(u)}">{html.escape(label)}</a>' for u, label in zip(self.links, self.labels, strict=False))
        message.add_alternative(f"<html><body>{anchors}</body></html>", subtype="html")
        for content, name in self.attachments:
            message.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
        return message.as_bytes(policy=policy.SMTP)


SUBMITTED = st.builds(
    Submitted,
    subject=TEXTS.map(lambda t: " ".join(t.split())),
    text=TEXTS,
    links=st.lists(URLS, max_size=3),
    labels=st.lists(TEXTS, min_size=3, max_size=3),
    encoding=st.sampled_from(["quoted-printable", "base64", "8bit"]),
    attachments=st.lists(st.tuples(st.binary(max_size=1500), st.sampled_from(["a.bin", "naïve é.dat"])), max_size=2),
)


class TestSubmittedMime:
    @settings(max_examples=150, deadline=None)
    @given(SUBMITTED)
    def test_a_personalised_copy_parses_keeps_attachments_and_line_limits(self, submitted: Submitted) -> None:
        raw = submitted.mime()
        out = personalise_mime(raw, full_plan())
        parsed = message_from_bytes(out, _class=EmailMessage, policy=policy.default)
        before = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        assert defects(parsed) == defects(before)
        assert all(len(line) <= 998 for line in out.split(b"\r\n"))
        assert non_body_parts(out) == non_body_parts(raw)
        assert [p.get_content() for p in parsed.iter_attachments()] == [p.get_content() for p in before.iter_attachments()]
        body = parsed.get_body(preferencelist=("html",))
        assert body is not None
        assert str(body.get_content()).count(PIXEL) == 1


GARBAGE_HTML = st.text(
    alphabet=st.sampled_from(list("<>/=\"' a-href![]&;#x0:\\n")) | st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200
)


class TestHostileInput:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=600) | GARBAGE_HTML.map(lambda t: ("Content-Type: text/html\r\n\r\n" + t).encode("utf-8", "replace")))
    def test_personalising_and_counting_never_raise(self, raw: bytes) -> None:
        out = personalise_mime(raw, full_plan())
        assert isinstance(out, bytes)
        assert count_tracked_links(raw, html_links=True, text_links=True) >= 0

    @settings(max_examples=300, deadline=None)
    @given(GARBAGE_HTML)
    def test_html_rewriting_never_raises(self, text: str) -> None:
        assert isinstance(rewrite_html(text, link=tracked, pixel_url=PIXEL, unsubscribe_url=UNSUBSCRIBE), str)
