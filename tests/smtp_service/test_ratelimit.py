"""The gateway's side of rate limits, as pure functions: the 429 reply, the tokens it remembers, the session counts,
and the MX listener's limits per client."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smtp_service.api_client import SubmitOutcome
from smtp_service.ratelimit import ClientLimits, PerMinute, RateLimitedTokens, client_key, parse_retry_after
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


class TestClientLimits:
    def test_connections_a_minute_then_a_wait_refilled_evenly(self) -> None:
        clock = Clock()
        limits = ClientLimits(PerMinute(connections=3, messages=0, bytes=0), clock=clock)
        assert [limits.connect("a") for _ in range(4)] == [0, 0, 0, 20]
        assert limits.connect("b") == 0
        clock.now += 20
        assert (limits.connect("a"), limits.connect("a")) == (0, 20)

    def test_mail_waits_for_a_message_and_some_bytes(self) -> None:
        clock = Clock()
        limits = ClientLimits(PerMinute(connections=0, messages=2, bytes=1000), clock=clock)
        assert (limits.mail("a"), limits.data("a", 400)) == (0, 0)
        assert (limits.mail("a"), limits.data("a", 400)) == (0, 0)
        assert limits.mail("a") == 30  # no message left: one comes back every 30 s
        clock.now += 30
        assert limits.mail("a") == 0
        assert limits.data("a", 800) == 6  # 300 still in use + 800 > 1000: refused, and counted
        assert limits.mail("a") > 0

    def test_a_message_bigger_than_the_bytes_limit_passes_when_nothing_is_used(self) -> None:
        clock = Clock()
        limits = ClientLimits(PerMinute(connections=0, messages=0, bytes=1000), clock=clock)
        assert limits.data("a", 5000) == 0
        assert limits.mail("a") > 0
        clock.now += 5 * 60
        assert limits.data("a", 5000) == 0

    def test_zero_is_no_limit(self) -> None:
        limits = ClientLimits(PerMinute(connections=0, messages=0, bytes=0), clock=Clock())
        assert {limits.connect("a") + limits.mail("a") + limits.data("a", 10**9) for _ in range(1000)} == {0}

    def test_quiet_clients_are_forgotten_and_the_table_is_bounded(self) -> None:
        clock = Clock()
        limits = ClientLimits(PerMinute(connections=10, messages=10, bytes=1000), clock=clock, max_clients=3)
        for key in ("a", "b", "c"):
            limits.connect(key)
        assert len(limits) == 3
        limits.connect("d")  # past max_clients: started over
        assert len(limits) == 1
        clock.now += 61
        limits.connect("e")
        assert len(limits) == 1

    @pytest.mark.parametrize(
        ("ip", "key"),
        [
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::2", "2001:db8:1:2::/64"),
            ("not an ip", "not an ip"),
        ],
    )
    def test_clients_are_ipv4_addresses_and_ipv6_64s(self, ip: str, key: str) -> None:
        assert client_key(ip) == key
