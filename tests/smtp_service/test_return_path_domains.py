"""The MX listener's set of return-path domains: RETURN_PATH_DOMAIN and what the API names, asked at
most once per SMTP_INBOUND_CACHE_SECONDS, the last answer kept while the API is away."""

from __future__ import annotations

import pytest

from smtp_service.config import SmtpSettings
from smtp_service.handler import MxHandler

pytestmark = pytest.mark.asyncio


class FakeApi:
    """Answers the domains question from `answers` in turn (None: the API is away)."""

    def __init__(self, *answers: list[str] | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def return_path_domains(self, *, account_token: str) -> list[str] | None:
        self.asked += 1
        return self.answers.pop(0) if self.answers else None


def handler(api: FakeApi, cache_seconds: float) -> MxHandler:
    settings = SmtpSettings(return_path_domain="Bounces.Postgate.test", smtp_inbound_cache_seconds=cache_seconds)
    return MxHandler(api=api, settings=settings)  # type: ignore[arg-type]


async def test_the_api_answer_is_cached_and_kept_while_the_api_is_away() -> None:
    api = FakeApi(["bounces.postgate.test", "pm.example.org"], None)
    mx = handler(api, cache_seconds=30)
    assert await mx.return_path_domains() == {"bounces.postgate.test", "pm.example.org"}
    assert await mx.return_path_domains() == {"bounces.postgate.test", "pm.example.org"}
    assert api.asked == 1
    mx._domains_until = 0.0  # the cache time is over; the API does not answer
    assert await mx.return_path_domains() == {"bounces.postgate.test", "pm.example.org"}


async def test_without_any_answer_only_the_global_domain_is_a_return_path() -> None:
    api = FakeApi(None, None)
    mx = handler(api, cache_seconds=0)
    assert await mx.return_path_domains() == {"bounces.postgate.test"}
    assert await mx.return_path_domains() == {"bounces.postgate.test"}
    assert api.asked == 2  # with no cache time, asked again at the next RCPT
