"""The delivery-time step: which messages get a copy per recipient, and what such a copy holds."""

from __future__ import annotations

import uuid

import pytest

from api_service.models import Message
from api_service.tracking.personalise import Personalisation, per_recipient, personalise
from shared.constants import TrackLinks

CONTEXT = Personalisation(secret="s" * 43, base_url="https://track.example", return_path_domain="bounces.example")
RAW = (
    b"From: app@example.org\r\nTo: r@example.net\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n\r\n<p><a href="https://example.com/a">a</a></p>\r\n'
)


def stored(*, track_opens: bool = False, track_links: str = TrackLinks.NONE.value, list_unsubscribe: bool = False) -> Message:
    return Message(id=uuid.uuid4(), track_opens=track_opens, track_links=track_links, list_unsubscribe=list_unsubscribe, raw_mime=RAW)


class TestPerRecipient:
    @pytest.mark.parametrize(
        "message",
        [stored(track_opens=True), stored(track_links=TrackLinks.HTML_ONLY.value), stored(list_unsubscribe=True)],
    )
    def test_tracking_or_unsubscribe_gives_each_recipient_a_copy(self, message: Message) -> None:
        assert per_recipient(message)

    def test_an_untracked_message_is_one_copy_for_all(self) -> None:
        assert not per_recipient(stored())


class TestPersonalise:
    def test_an_untracked_message_is_sent_as_stored(self) -> None:
        assert personalise(RAW, message=stored(), recipient="r@example.net", context=CONTEXT) == RAW

    def test_without_a_context_the_copy_is_as_stored(self) -> None:
        assert personalise(RAW, message=stored(track_opens=True), recipient="r@example.net") == RAW

    def test_a_tracked_copy_gets_its_pixel_and_tracked_links(self) -> None:
        out = personalise(
            RAW, message=stored(track_opens=True, track_links=TrackLinks.HTML_ONLY.value), recipient="r@example.net", context=CONTEXT
        )
        assert b"https://track.example/" in out
        assert b'href="https://example.com/a"' not in out
