"""The gateway's side of rate limits, as pure functions: the 429 reply, the tokens it remembers, the session counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smtp_service.api_client import SubmitOutcome
from smtp_service.ratelimit import RateLimitedTokens, parse_retry_after
from smtp_service.replies import submission_reply
from smtp_service.session import data_result


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


class TestReplies:
    def test_429_is_a_temporary_451_4_7_1_with_the_wait(self) -> None:
        reply = submission_reply(SubmitOutcome(status=429, error_code=429, message="Rate limit exceeded", retry_after=2.2))
        assert reply == "451 4.7.1 Rate limit exceeded for this server, try again in 3 seconds"

    @pytest.mark.parametrize(
        ("reply", "result"),
        [
            ("250 2.0.0 Ok: queued as 1", "accepted"),
            ("451 4.7.1 Rate limit exceeded for this server, try again in 3 seconds", "rate_limited"),
            ("451 4.3.0 Temporary failure storing the message, please retry", "deferred"),
            ("554 5.6.0 Invalid 'From' address", "rejected"),
            ("552 5.3.4 Message too big", "rejected"),
        ],
    )
    def test_data_replies_are_counted_by_meaning(self, reply: str, result: str) -> None:
        assert data_result(reply) == result


class TestRateLimitedTokens:
    def test_a_token_is_limited_until_its_retry_after_passes(self) -> None:
        clock = Clock()
        tokens = RateLimitedTokens(clock)
        tokens.note("t", 2.5)
        assert tokens.remaining("t") == 3
        assert tokens.remaining("other") == 0
        clock.now += 2.4
        assert tokens.remaining("t") == 1
        clock.now += 0.2
        assert tokens.remaining("t") == 0

    @pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0", 1.0), (None, 1.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0)])
    def test_retry_after_is_read_as_seconds_at_least_one(self, value: str | None, seconds: float) -> None:
        assert parse_retry_after(value) == seconds
