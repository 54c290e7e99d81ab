"""Group commit: writes that arrive while one is under way share the next group, each caller is
answered once its group is written, and a group that fails is written item by item."""

from __future__ import annotations

import asyncio

import pytest

from api_service.core.groupcommit import GroupCommit

pytestmark = pytest.mark.asyncio


class Store:
    def __init__(self, *, bad: set[int] | None = None) -> None:
        self.groups: list[list[int]] = []
        self.written: list[int] = []
        self.bad = bad or set()
        self.gate = asyncio.Event()

    async def together(self, items: list[int]) -> None:
        self.groups.append(items)
        await self.gate.wait()  # a commit under way: later writes must queue for the next group
        if self.bad & set(items):
            raise RuntimeError("constraint violated")
        self.written.extend(items)

    async def alone(self, item: int) -> None:
        if item in self.bad:
            raise RuntimeError("constraint violated")
        self.written.append(item)


class TestGroupCommit:
    async def test_writes_during_a_commit_share_the_next_group_and_wait_for_it(self) -> None:
        store = Store()
        commit = GroupCommit(together=store.together, alone=store.alone, what="numbers")
        first = asyncio.create_task(commit.write(0))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(commit.write(n)) for n in range(1, 6)]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in [first, *rest])  # nobody is answered before its commit
        store.gate.set()
        await asyncio.gather(first, *rest)
        assert store.groups == [[0], [1, 2, 3, 4, 5]]
        assert sorted(store.written) == [0, 1, 2, 3, 4, 5]

    async def test_a_failing_group_is_written_item_by_item(self) -> None:
        store = Store(bad={2})
        store.gate.set()
        commit = GroupCommit(together=store.together, alone=store.alone, what="numbers")
        await asyncio.gather(*(commit.write(n) for n in range(5)))
        assert store.groups == [[0, 1, 2, 3, 4]]
        assert sorted(store.written) == [0, 1, 3, 4]  # the bad one held back no other

    async def test_close_cancels_the_waiting_writers(self) -> None:
        store = Store()
        commit = GroupCommit(together=store.together, alone=store.alone, what="numbers")
        waiting = asyncio.create_task(commit.write(1))
        await asyncio.sleep(0.01)
        await commit.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert store.written == []
