"""The SQL and the Lua script are `core.gcra.take` written again: for random rates and request
sequences, each store grants exactly what the pure function grants, on a real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_service.core.gcra import MICROSECONDS, Rate, take
from api_service.operations.stores import PostgresStore, RedisStore

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
EPOCH_2026 = 1_780_000_000 * MICROSECONDS
RATES = st.builds(Rate, per_second=st.floats(min_value=0.01, max_value=50_000), burst=st.integers(min_value=1, max_value=2_000))
STEPS = st.lists(st.tuples(st.integers(min_value=0, max_value=3 * MICROSECONDS), st.integers(min_value=1, max_value=100)), max_size=12)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def replay(store: PostgresStore | RedisStore, rate: Rate, steps: list[tuple[int, int]], start: int) -> None:
    key = f"test:{uuid.uuid4()}"
    tat: int | None = None
    now = start
    for delay, want in steps:
        now += delay
        expected = take(tat=tat, now=now, want=want, rate=rate)
        got = await store.take(key=key, want=want, rate=rate, now=now)
        assert got == expected
        tat = expected.tat


class TestPostgresStore:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rate=RATES, steps=STEPS, start=st.integers(min_value=EPOCH_2026, max_value=EPOCH_2026 + 10**12))
    def test_takes_as_gcra_takes(self, database_url: str, rate: Rate, steps: list[tuple[int, int]], start: int) -> None:
        async def run() -> None:
            store = PostgresStore(database_url)
            try:
                await replay(store, rate, steps, start)
            finally:
                await store.close()

        asyncio.run(run())

    def test_uses_the_database_clock_and_prunes_full_buckets(self, database_url: str) -> None:
        async def run() -> None:
            store = PostgresStore(database_url)
            rate = Rate(per_second=1000, burst=3)
            try:
                first = await store.take(key="test:clock", want=1, rate=rate)
                assert first.granted == 1
                assert abs(first.now / MICROSECONDS - time.time()) < 60
                await asyncio.sleep(0.01)  # 3 ms refill the bucket: the row is the same as none
                assert await store.prune() >= 1
            finally:
                await store.close()

        asyncio.run(run())


@pytest.mark.skipif(not redis_reachable(), reason="no Redis on 127.0.0.1:6379")
class TestRedisStore:
    @settings(max_examples=60, deadline=None)
    @given(rate=RATES, steps=STEPS, start=st.integers(min_value=EPOCH_2026, max_value=EPOCH_2026 + 10**12))
    def test_takes_as_gcra_takes(self, rate: Rate, steps: list[tuple[int, int]], start: int) -> None:
        async def run() -> None:
            store = RedisStore(REDIS_URL, prefix=f"postgate-test:{uuid.uuid4()}:")
            try:
                await replay(store, rate, steps, start)
            finally:
                await store.close()

        asyncio.run(run())

    def test_uses_the_redis_clock(self) -> None:
        async def run() -> None:
            store = RedisStore(REDIS_URL, prefix=f"postgate-test:{uuid.uuid4()}:")
            try:
                taken = await store.take(key="clock", want=2, rate=Rate(per_second=1, burst=5))
                assert taken.granted == 2
                assert abs(taken.now / MICROSECONDS - time.time()) < 60
            finally:
                await store.close()

        asyncio.run(run())
