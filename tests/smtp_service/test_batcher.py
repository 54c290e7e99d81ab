"""The Batcher on its own: what it sends together, and what each submitter hears."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Histogram

from smtp_service.batcher import Batcher, BatchLimits

pytestmark = pytest.mark.asyncio


class Api:
    """A stand-in for the API call: records each batch, answers after `delay`, or fails."""

    def __init__(self, *, delay: float = 0.05, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.batches: list[list[str]] = []

    async def send(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the call failed")
        return [f"ok {item}" for item in items]


def batcher(api: Api, *, max_messages: int = 64, max_bytes: int = 1_000_000, in_flight: int = 1) -> Batcher[str, str]:
    return Batcher(
        send=api.send,
        failed=lambda reason: f"failed {reason}",
        limits=BatchLimits(max_messages=max_messages, max_bytes=max_bytes, max_in_flight=in_flight, window=0.01),
        size=len,
        observed=Histogram("test_batch", "batch sizes", registry=CollectorRegistry()),
    )


class TestBatcher:
    async def test_an_idle_batcher_sends_at_once_and_later_arrivals_share_a_call(self) -> None:
        api = Api()
        gather = batcher(api)
        first = asyncio.create_task(gather.submit("a"))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(gather.submit(item)) for item in "bcd"]
        assert await asyncio.gather(first, *rest) == ["ok a", "ok b", "ok c", "ok d"]
        assert api.batches == [["a"], ["b", "c", "d"]]

    async def test_batches_respect_the_count_and_size_caps(self) -> None:
        api = Api()
        gather = batcher(api, max_messages=2, max_bytes=5, in_flight=1)
        blocker = asyncio.create_task(gather.submit("x"))
        await asyncio.sleep(0.01)
        items = ["aa", "bb", "ccc", "d", "eeeeee"]
        answers = await asyncio.gather(*(gather.submit(item) for item in items))
        await blocker
        assert answers == [f"ok {item}" for item in items]
        assert api.batches[0] == ["x"]
        assert all(len(batch) <= 2 for batch in api.batches)
        assert all(sum(map(len, batch)) <= 5 or len(batch) == 1 for batch in api.batches)
        assert sorted(item for batch in api.batches[1:] for item in batch) == sorted(items)

    async def test_a_failed_call_answers_every_member_with_the_failure(self) -> None:
        api = Api(fail=True)
        gather = batcher(api)
        answers = await asyncio.gather(*(gather.submit(item) for item in "abc"))
        assert answers == ["failed RuntimeError"] * 3

    async def test_a_submitter_that_went_away_before_its_call_is_not_sent(self) -> None:
        api = Api()
        gather = batcher(api)
        blocker = asyncio.create_task(gather.submit("x"))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(gather.submit("gone"))
        stays = asyncio.create_task(gather.submit("stays"))
        await asyncio.sleep(0)
        gone.cancel()
        assert await stays == "ok stays"
        await blocker
        assert api.batches == [["x"], ["stays"]]
