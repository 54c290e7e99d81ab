"""StrippedTextReply for the reply styles of common mail clients."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.inbound.replies import SCAN_CHARS, stripped_text_reply


class TestStrippedTextReply:
    @pytest.mark.parametrize(
        ("text", "reply"),
        [
            pytest.param(
                "Sounds good.\n\nOn Mon, 3 Mar 2025 at 10:12, Bob Smith <bob@example.com> wrote:\n\n> Tuesday?\n",
                "Sounds good.",
                id="gmail",
            ),
            pytest.param(
                "Yes.\n\nOn Mon, Mar 3, 2025 at 10:12 AM Bob Smith <\nbob@example.com> wrote:\n\n> Tuesday?\n",
                "Yes.",
                id="gmail-wrapped-attribution",
            ),
            pytest.param(
                "Approved.\n\n________________________________\nFrom: Dana <dana@example.com>\nSent: Monday, March 3, 2025 9:00 AM\n"
                "To: Carl <carl@example.com>\nSubject: Budget\n\nPlease approve.\n",
                "Approved.",
                id="outlook-web",
            ),
            pytest.param(
                "Approved.\n\nFrom: Dana <dana@example.com>\nSent: Monday, March 3, 2025 9:00 AM\nTo: Carl\nSubject: Budget\n\nPlease.\n",
                "Approved.",
                id="outlook-desktop",
            ),
            pytest.param(
                "Approved.\n\n-----Original Message-----\nFrom: Dana [mailto:dana@example.com]\nSent: Monday\nSubject: Budget\n\nPlease.\n",
                "Approved.",
                id="outlook-original-message",
            ),
            pytest.param(
                "Works.\n\nSent from my iPhone\n\n> On 3 Mar 2025, at 10:12, Bob <bob@example.org> wrote:\n> \n> Call at 3?\n",
                "Works.\n\nSent from my iPhone",
                id="apple-mail",
            ),
            pytest.param("Ja.\n\nAm 03.03.2025 um 10:12 schrieb Bob <bob@example.com>:\n> Frage\n", "Ja.", id="german"),
            pytest.param("Oui.\n\nLe lun. 3 mars 2025 à 10:12, Bob <bob@example.com> a écrit :\n> Question\n", "Oui.", id="french"),
            pytest.param("I agree.\n\n> Can we meet on Tuesday?\n> Bob\n", "I agree.", id="bare-quote"),
            pytest.param(
                "> Question one?\nAnswer one.\n> Question two?\nAnswer two.\n",
                "> Question one?\nAnswer one.\n> Question two?\nAnswer two.",
                id="inline-answers",
            ),
            pytest.param("  indented first line\n\n\nsecond\n\n", "  indented first line\n\n\nsecond", id="no-quote"),
            pytest.param("\n\nOn Mon, 3 Mar 2025, Bob <b@example.com> wrote:\n> only a quote\n", "", id="only-a-quote"),
            pytest.param(
                "Line one\r\nLine two\r\n\r\nOn Mon, 3 Mar 2025, Bob <b@example.com> wrote:\r\n> x\r\n", "Line one\r\nLine two", id="crlf"
            ),
            pytest.param("", "", id="empty"),
        ],
    )
    def test_keeps_only_the_new_text(self, text: str, reply: str) -> None:
        assert stripped_text_reply(text) == reply

    def test_a_quote_beyond_the_scanned_start_is_kept(self) -> None:
        text = "x" * 80 + "\n"
        long_reply = text * (SCAN_CHARS // len(text) + 1)
        assert (
            stripped_text_reply(long_reply + "On Mon, Bob <b@example.com> wrote:\n> q\n")
            == long_reply + "On Mon, Bob <b@example.com> wrote:"
        )

    def test_overlong_lines_are_kept_but_never_taken_for_a_header(self) -> None:
        line = "On " + "x " * 400 + "wrote:"
        assert stripped_text_reply(f"Reply\n{line}\nmore") == f"Reply\n{line}\nmore"

    @given(st.text())
    def test_is_a_piece_of_the_senders_text(self, text: str) -> None:
        assert stripped_text_reply(text) in text
