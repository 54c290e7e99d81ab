"""Tracked links cost work linear in the body, at most `MAX_TRACKED_LINKS_PER_PART` per part, and
never hold the API's event loop (issue 22, row 1): an /email of 40,000 links leaves /health
answering, rewriting 80,000 links for one recipient finishes and equals a reference built apart."""

from __future__ import annotations

import asyncio
import html
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.tracking import rewrite
from api_service.tracking.rewrite import (
    MAX_TRACKED_LINKS_PER_PART,
    TEXT_URL,
    TRAILING_PUNCTUATION,
    Plan,
    count_tracked_links,
    personalise_mime,
    pixel_tag,
    rewrite_html,
    rewrite_text,
    trackable,
)
from shared.constants import ClickLocation
from tests.factories import create_domain, create_server, message

PIXEL = "https://track.example/t/o/PIXEL"
UNSUBSCRIBE = "https://track.example/t/u/UNSUB"


def tracked(url: str, location: ClickLocation) -> str:
    return f"https://track.example/t/c/{location.value}/{url.rsplit('/', 1)[-1]}"


def html_links(count: int) -> str:
    return "".join(f'<a href="https://example.com/{i}">link {i}</a>\n' for i in range(count))


def html_reference(count: int, tracked_count: int) -> str:
    """What `html_links(count)` becomes, written from the links themselves."""
    return "".join(
        f'<a href="{tracked(f"https://example.com/{i}", ClickLocation.HTML) if i < tracked_count else f"https://example.com/{i}"}">link {i}</a>\n'
        for i in range(count)
    )


def text_links(count: int) -> str:
    return " ".join(f"see https://example.com/{i}." for i in range(count))


def text_reference(count: int, tracked_count: int) -> str:
    return " ".join(
        f"see {tracked(f'https://example.com/{i}', ClickLocation.TEXT) if i < tracked_count else f'https://example.com/{i}'}."
        for i in range(count)
    )


class TestLinearRewriting:
    """Without the per-part cap, 80,000 links are rewritten in one pass; the old one-splice-per-link
    rewrite copied the whole text for each link (113 s for one recipient)."""

    def test_80000_html_links_are_rewritten_as_the_reference(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(rewrite, "MAX_TRACKED_LINKS_PER_PART", 10**9)
        text = "<html><body>" + html_links(80_000) + "</body></html>"
        out = rewrite_html(text, link=tracked, pixel_url=PIXEL, unsubscribe_url=None)
        assert out == "<html><body>" + html_reference(80_000, 80_000) + pixel_tag(PIXEL) + "</body></html>"

    def test_80000_text_links_are_rewritten_as_the_reference(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(rewrite, "MAX_TRACKED_LINKS_PER_PART", 10**9)
        assert rewrite_text(text_links(80_000), link=tracked, unsubscribe_url=None) == text_reference(80_000, 80_000)


class TestCap:
    def test_links_past_the_cap_stay_untracked_and_are_not_counted(self) -> None:
        over = MAX_TRACKED_LINKS_PER_PART + 500
        assert rewrite_html(html_links(over), link=tracked, pixel_url=None, unsubscribe_url=None) == html_reference(
            over, MAX_TRACKED_LINKS_PER_PART
        )
        assert rewrite_text(text_links(over), link=tracked, unsubscribe_url=None) == text_reference(over, MAX_TRACKED_LINKS_PER_PART)

    def test_the_cap_is_per_body_part(self) -> None:
        over = MAX_TRACKED_LINKS_PER_PART + 1
        raw = (
            'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n'
            f"--b\r\nContent-Type: text/plain\r\n\r\n{text_links(over)}\r\n"
            f"--b\r\nContent-Type: text/html\r\n\r\n{html_links(over)}\r\n--b--\r\n"
        ).encode()
        seen: list[str] = []

        def recording(url: str, location: ClickLocation) -> str:
            seen.append(url)
            return tracked(url, location)

        personalise_mime(raw, Plan(track_html=True, track_text=True, link=recording))
        assert len(seen) == 2 * MAX_TRACKED_LINKS_PER_PART
        assert count_tracked_links(raw, html_links=True, text_links=True) == 2 * MAX_TRACKED_LINKS_PER_PART


class TestUnfinishedHtml:
    def test_an_unfinished_tag_at_the_end_is_left_as_it_is(self) -> None:
        # Closing the stdlib parser re-reads such a tail from each `<`: seconds for 24 KB before.
        text = '<a href="https://example.com/a">a</a>' + "<a " * 200_000
        out = rewrite_html(text, link=tracked, pixel_url=PIXEL, unsubscribe_url=None)
        assert out == f'<a href="{tracked("https://example.com/a", ClickLocation.HTML)}">a</a>' + "<a " * 200_000 + pixel_tag(PIXEL)

    def test_a_malformed_marked_section_leaves_the_rest_alone(self) -> None:
        text = '<a href="https://example.com/a">a</a><![ <a href="https://example.com/b">b</a>'
        out = rewrite_html(text, link=tracked, pixel_url=None, unsubscribe_url=None)
        assert out.endswith('<![ <a href="https://example.com/b">b</a>')
        assert "https://example.com/a" not in out


# --- the rewrite equals a naive one, on small inputs ------------------------------------------------

WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00<>&"), max_size=40)
URLS = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
)
HREFS = URLS | st.sampled_from(["mailto:a@example.org", "#top", "ftp://x.example/", "{{{ pm:unsubscribe }}}"])


def naive_text(text: str) -> str:
    """The old rewrite: one splice per link, from the last."""
    spans = []
    for match in TEXT_URL.finditer(text):
        url = match.group().rstrip(TRAILING_PUNCTUATION)
        if trackable(url):
            spans.append((match.start(), match.start() + len(url)))
    for start, end in reversed(spans):
        text = text[:start] + tracked(text[start:end], ClickLocation.TEXT) + text[end:]
    return text


@st.composite
def html_documents(draw: st.DrawFn) -> tuple[str, str]:
    """(a document of text, anchors and a body end, the document as tracking should write it)."""
    source, expected = ["<html><body>"], ["<html><body>"]
    for _ in range(draw(st.integers(0, 8))):
        words = html.escape(draw(WORDS))
        href = draw(HREFS)
        no_track = draw(st.booleans())
        marker = " data-pm-no-track" if no_track else ""
        source.append(f'{words}<a{marker} href="{html.escape(href)}">{words}</a>')
        new = tracked(href, ClickLocation.HTML) if href.startswith("https://") and not no_track else href
        expected.append(f'{words}<a{marker} href="{html.escape(new)}">{words}</a>')
    tail = html.escape(draw(WORDS))
    source.append(f"{tail}</body></html>")
    expected.append(f"{tail}{pixel_tag(PIXEL)}</body></html>")
    return "".join(source), "".join(expected)


class TestAgainstNaiveReference:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(WORDS | URLS | URLS.map(lambda u: u + ".") | URLS.map(lambda u: f"({u})"), max_size=12).map(" ".join))
    def test_text_rewrite_equals_one_splice_per_link(self, text: str) -> None:
        assert rewrite_text(text, link=tracked, unsubscribe_url=None) == naive_text(text)

    @settings(max_examples=200, deadline=None)
    @given(html_documents())
    def test_html_rewrite_equals_the_document_written_from_its_parts(self, case: tuple[str, str]) -> None:
        source, expected = case
        assert rewrite_html(source, link=tracked, pixel_url=PIXEL, unsubscribe_url=None) == expected


# --- the attack, over HTTP ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.slow
async def test_an_email_of_40000_tracked_links_leaves_health_answering(client: httpx.AsyncClient, live_api: str) -> None:
    """Row 1 as measured: a 1.4 MB HtmlBody of 40,000 links to a server that tracks links froze
    /health for 3.8 s while its links were counted on the event loop."""
    server = await create_server(client, TrackLinks="HtmlAndText")
    await create_domain(client, "example.org")
    body = "<html><body>" + "".join(f'<a href="https://example.com/p/{i:06d}">go</a>' for i in range(40_000)) + "</body></html>"
    assert len(body) > 1_400_000
    slowest = 0.0
    probes = 0
    async with httpx.AsyncClient(base_url=live_api, timeout=120) as live:
        send = asyncio.create_task(live.post("/email", json=message(From="app@example.org", HtmlBody=body), headers=server.headers))
        while not send.done():
            started = time.monotonic()
            health = await live.get("/health")
            slowest = max(slowest, time.monotonic() - started)
            probes += 1
            assert health.status_code == 200
            await asyncio.sleep(0.02)
        sent = await send
    assert sent.status_code == 200, sent.text
    assert probes > 1
    assert slowest < 1.0, f"/health took {slowest:.2f} s while the send was handled"
