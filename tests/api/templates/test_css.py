"""CSS inlining: rules reach the elements, nothing is fetched, nothing raises."""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.templates.css import inline_css
from api_service.templates.mustachio import compile_template

RECEIPT = (Path(__file__).parent / "receipt.html").read_text()
MODEL = {
    "store": {"name": "Acme", "url": "https://acme.example", "address": "1 Main St"},
    "customer": {"first_name": "Ann"},
    "discount": {"percent": 10, "code": "THANKS10", "expires": "2026-01-31"},
    "items": [{"description": "Pen", "quantity": 2, "amount": "$3.00"}],
    "total": "$3.00",
    "pdf_url": "https://acme.example/r.pdf",
}


class _Styles(HTMLParser):
    """The `style` attribute of every element, by tag and class."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.found.append((tag, values.get("class") or "", values.get("style") or ""))


def styles(html: str) -> list[tuple[str, str, str]]:
    parser = _Styles()
    parser.feed(html)
    return parser.found


class TestInlineCss:
    def test_rules_are_copied_onto_matching_elements(self) -> None:
        out = inline_css(compile_template(RECEIPT).render(MODEL, html=True))
        found = styles(out)
        button = next(style for tag, cls, style in found if tag == "a" and "button--green" in cls)
        assert "background-color: #22bc66" in button  # the later, more specific rule wins over .button's
        assert "display: inline-block" in button
        body = next(style for tag, _, style in found if tag == "body")
        assert "background-color: #f2f4f6" in body
        assert "Helvetica Neue" in body

    def test_style_blocks_and_media_queries_are_kept(self) -> None:
        out = inline_css(RECEIPT)
        assert "<style" in out
        assert "@media only screen and (max-width: 600px)" in out
        assert "prefers-color-scheme: dark" in out

    def test_an_existing_style_attribute_wins(self) -> None:
        out = inline_css("<html><head><style>p { color: red; margin: 0 }</style></head><body><p style='color: blue'>x</p></body></html>")
        style = next(style for tag, _, style in styles(out) if tag == "p")
        assert "color: blue" in style
        assert "red" not in style

    def test_a_fragment_stays_a_fragment(self) -> None:
        out = inline_css("<style>.x { color: red }</style><p class='x'>hi</p>")
        assert "<html" not in out
        assert "<body" not in out
        assert ("p", "x", "color: red;") in styles(out)

    @pytest.mark.parametrize("html", ["<p>no style here</p>", "", "plain text", "<html><body>&#233; &amp;</body></html>"])
    def test_html_without_style_is_returned_as_it_is(self, html: str) -> None:
        assert inline_css(html) is html

    def test_placeholders_survive(self) -> None:
        out = inline_css('<style>a { color: red }</style><a href="{{{ pm:unsubscribe }}}">Unsubscribe</a>')
        assert 'href="{{{ pm:unsubscribe }}}"' in out

    def test_remote_stylesheets_are_never_fetched(self) -> None:
        # Nothing listens on port 9: loading either sheet would raise, and the input would come back unchanged.
        html = (
            "<html><head><link rel='stylesheet' href='http://127.0.0.1:9/a.css'>"
            "<style>@import url(http://127.0.0.1:9/b.css); p { color: red }</style></head><body><p>x</p></body></html>"
        )
        out = inline_css(html)
        assert out != html
        assert ("p", "", "color: red;") in styles(out)
        assert "http://127.0.0.1:9/a.css" in out

    @pytest.mark.parametrize(
        "css",
        [
            "p { color: ",
            "@@@ {{{ }}} p {",
            "p::before { content: '\\' }",
            "}}}}",
            "p { color: red } @media {",
            "\x00",
            ":not(:not(p)) { x: y }",
        ],
    )
    def test_broken_css_does_not_raise(self, css: str) -> None:
        out = inline_css(f"<html><head><style>{css}</style></head><body><p>kept text</p></body></html>")
        assert "kept text" in out

    def test_a_failure_returns_the_input_and_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        html = "<style>p { color: red }</style><p>\ud800</p>"  # a lone surrogate cannot be encoded as UTF-8
        with caplog.at_level(logging.WARNING, logger="postgate.templates"):
            assert inline_css(html) is html
        assert "CSS inlining failed" in caplog.text

    @given(st.text(), st.text())
    def test_never_raises(self, css: str, body: str) -> None:
        assert isinstance(inline_css(f"<style>{css}</style>{body}"), str)
        assert isinstance(inline_css(body), str)
