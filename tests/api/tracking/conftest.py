"""A live API on a loopback port for the tracking URLs in delivered mail, and a worker that writes
that API's address into them (TRACKING_BASE_URL)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from tests.api.conftest import Worker
from tests.compat.conftest import live_api

__all__ = ["live_api"]

CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


@pytest.fixture
def tracking_worker(worker: Worker, live_api: str) -> Worker:
    worker.settings = worker.settings.model_copy(update={"tracking_base_url": live_api})
    return worker


@dataclass
class Copy:
    """One delivered copy, read as a mail client reads it."""

    message: EmailMessage

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def urls(self, base: str, segment: str, where: str) -> list[str]:
        return re.findall(re.escape(f"{base}/t/{segment}/") + r"[A-Za-z0-9_-]+", where)


def read_copy(data: bytes) -> Copy:
    parsed = message_from_bytes(data, _class=EmailMessage, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return Copy(parsed)
