"""GCRA against the textbook token bucket: for any rate, burst and sequence of requests, the same grants."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.core.gcra import MICROSECONDS, Rate, Taken, take


@dataclass
class TokenBucket:
    """The usual formulation: credit refills with time up to a cap, each token costs `interval` of it."""

    rate: Rate
    credit: int = -1
    last: int = 0

    def take(self, *, now: int, want: int) -> int:
        if self.credit < 0:
            self.credit, self.last = self.rate.capacity, now
        self.credit = min(self.rate.capacity, self.credit + (now - self.last))
        self.last = now
        granted = min(want, self.credit // self.rate.interval)
        self.credit -= granted * self.rate.interval
        return granted


RATES = st.builds(Rate, per_second=st.floats(min_value=0.001, max_value=100_000), burst=st.integers(min_value=1, max_value=5_000))
STEPS = st.lists(st.tuples(st.integers(min_value=0, max_value=5 * MICROSECONDS), st.integers(min_value=1, max_value=100)), max_size=60)


class TestTake:
    @settings(max_examples=500)
    @given(rate=RATES, steps=STEPS, start=st.integers(min_value=0, max_value=2**50))
    def test_grants_what_a_token_bucket_grants(self, rate: Rate, steps: list[tuple[int, int]], start: int) -> None:
        bucket = TokenBucket(rate)
        tat: int | None = None
        now = start
        for delay, want in steps:
            now += delay
            taken = take(tat=tat, now=now, want=want, rate=rate)
            assert taken.granted == bucket.take(now=now, want=want)
            tat = taken.tat

    @settings(max_examples=300)
    @given(rate=RATES, steps=STEPS)
    def test_a_refusal_waits_exactly_until_the_next_token(self, rate: Rate, steps: list[tuple[int, int]]) -> None:
        tat: int | None = None
        now = 0
        for delay, want in steps:
            now += delay
            taken = take(tat=tat, now=now, want=want, rate=rate)
            tat = taken.tat
            if taken.granted == 0:
                wait = taken.wait(rate)
                assert wait > 0
                assert take(tat=tat, now=now + wait - 1, want=1, rate=rate).granted == 0
                assert take(tat=tat, now=now + wait, want=1, rate=rate).granted == 1

    def test_a_new_bucket_is_full(self) -> None:
        rate = Rate(per_second=1, burst=10)
        assert take(tat=None, now=5, want=50, rate=rate) == Taken(granted=10, tat=5 + 10 * MICROSECONDS, now=5)

    def test_retry_after_rounds_up_to_whole_seconds(self) -> None:
        rate = Rate(per_second=0.5, burst=1)
        first = take(tat=None, now=0, want=1, rate=rate)
        refused = take(tat=first.tat, now=100, want=1, rate=rate)
        assert refused.granted == 0
        assert refused.retry_after_seconds(rate) == 2
