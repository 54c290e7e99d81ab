"""The limiter over a real PostgreSQL store: exact for small bursts, shared by processes, few round
trips for a busy token, none for a refused one, and open when its store is down."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from api_service.core import metrics
from api_service.core.gcra import Rate, Taken
from api_service.core.ratelimit import Limiter, bucket_key
from api_service.operations.stores import PostgresStore, RedisStore
from tests.compat.conftest import free_port

SLOW = 0.001  # one token every 1000 s: nothing refills while a test runs


@dataclass
class Counted:
    """The real store, counting the round trips made to it."""

    store: PostgresStore
    calls: int = 0
    name: str = "postgresql"

    async def take(self, *, key: str, want: int, rate: Rate) -> Taken:
        self.calls += 1
        return await self.store.take(key=key, want=want, rate=rate)

    async def close(self) -> None:
        await self.store.close()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4()}"


@pytest_asyncio.fixture
async def stores(database_url: str) -> AsyncIterator[Callable[[], Counted]]:
    """Real PostgreSQL stores, one per simulated API process, closed after the test."""
    made: list[Counted] = []

    def make() -> Counted:
        made.append(Counted(PostgresStore(database_url)))
        return made[-1]

    yield make
    for store in made:
        await store.close()


@pytest.mark.asyncio
class TestLimiter:
    async def test_a_small_burst_is_exact_then_refused_with_retry_after(self, stores: Callable[[], Counted], key: str) -> None:
        store = stores()
        limiter = Limiter(store=store, lease_seconds=0.5)
        rate = Rate(per_second=SLOW, burst=5)
        decisions = [await limiter.check(key, rate) for _ in range(8)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        assert all(d.retry_after >= 999 for d in decisions[5:])
        # One refusal from the store; the next two were refused here without a round trip.
        assert store.calls == 6

    async def test_processes_share_one_bucket(self, stores: Callable[[], Counted], key: str) -> None:
        limiters = [Limiter(store=stores(), lease_seconds=0.5) for _ in range(3)]
        rate = Rate(per_second=SLOW, burst=10)
        allowed = [(await limiters[i % 3].check(key, rate)).allowed for i in range(30)]
        assert sum(allowed) == 10

    async def test_a_busy_token_takes_leases_and_never_exceeds_its_burst(self, stores: Callable[[], Counted], key: str) -> None:
        made = [stores() for _ in range(2)]
        limiters = [Limiter(store=s, lease_seconds=60) for s in made]
        rate = Rate(per_second=SLOW, burst=2000)
        allowed = sum([(await limiters[i % 2].check(key, rate)).allowed for i in range(3000)])
        # Tokens a process leased but had not used when the bucket ran dry are lost: at most one
        # lease (burst / 20) each.
        assert 2000 - 2 * 100 <= allowed <= 2000
        assert sum(s.calls for s in made) < 3000 / 10

    async def test_leased_tokens_expire(self, stores: Callable[[], Counted], key: str) -> None:
        store = stores()
        clock = Clock()
        limiter = Limiter(store=store, lease_seconds=0.5, clock=clock)
        rate = Rate(per_second=SLOW, burst=2000)
        for _ in range(20):
            assert (await limiter.check(key, rate)).allowed
        calls = store.calls
        clock.now += 0.6
        assert (await limiter.check(key, rate)).allowed
        assert store.calls == calls + 1

    async def test_a_store_that_is_down_lets_requests_through_and_says_so_once(self, key: str, caplog: pytest.LogCaptureFixture) -> None:
        limiter = Limiter(store=RedisStore(f"redis://127.0.0.1:{free_port()}/0"), lease_seconds=0.5)
        rate = Rate(per_second=SLOW, burst=1)
        errors = metrics.RATE_LIMIT_STORE_ERRORS._value.get()
        with caplog.at_level(logging.WARNING, logger="postgate.ratelimit"):
            decisions = [await limiter.check(f"{key}:{i}", rate) for i in range(50)]
        assert all(d.allowed for d in decisions)
        # After a failure the limiter stops asking for a second: one failed round trip, one line.
        assert metrics.RATE_LIMIT_STORE_ERRORS._value.get() == errors + 1
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
        await limiter.close()


class TestBucketKey:
    @settings(max_examples=100)
    @given(token=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60))
    def test_holds_no_token_and_ignores_case(self, token: str) -> None:
        key = bucket_key("server", token.encode())
        assert token not in key or len(token) < 4
        assert key == bucket_key("server", f" {token.upper()} ".encode())
