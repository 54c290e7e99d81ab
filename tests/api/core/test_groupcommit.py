"""The group-commit engine's failure contract, against a real PostgreSQL: writes that arrive while a
commit is under way share the next group; each caller gets its own answer; a neighbour that cannot be
stored sinks nobody else; a COMMIT that fails answers the whole group with its error and stores
nothing; a cancelled caller is left out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.groupcommit import GroupCommit, write_in

pytestmark = pytest.mark.asyncio

REFUSED = 13  # the rules refuse it: its answer is its own exception, nothing is written
COMMIT_FAILS = 666  # a deferred constraint refuses the COMMIT of any transaction holding it


class Refused(Exception):
    pass


class Probe:
    """Writes numbers into `groupcommit_probe` (CHECK n >= 0: a negative number cannot be stored)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, session: AsyncSession, items: list[int]) -> Sequence[int | Exception]:
        self.groups.append(items)
        await self.gate.wait()  # a commit under way: later writes queue for the next group
        kept = [n for n in items if n != REFUSED]
        await session.execute(text("INSERT INTO groupcommit_probe (n) SELECT unnest(CAST(:ns AS int[]))"), {"ns": kept})
        return [Refused(n) if n == REFUSED else n * 10 for n in items]


@pytest_asyncio.fixture
async def probe_table(app: FastAPI) -> AsyncIterator[None]:
    async with app.state.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE groupcommit_probe (n int NOT NULL CHECK (n >= 0))"))
        await conn.execute(
            text(
                "CREATE FUNCTION groupcommit_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF NEW.n = {COMMIT_FAILS} THEN RAISE EXCEPTION 'commit refused by test'; END IF; RETURN NULL; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER groupcommit_refuse AFTER INSERT ON groupcommit_probe "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION groupcommit_refuse()"
            )
        )
    try:
        yield
    finally:
        async with app.state.engine.begin() as conn:
            await conn.execute(text("DROP TABLE groupcommit_probe"))
            await conn.execute(text("DROP FUNCTION groupcommit_refuse()"))


async def stored(app: FastAPI) -> list[int]:
    async with app.state.engine.connect() as conn:
        return sorted((await conn.execute(text("SELECT n FROM groupcommit_probe"))).scalars())


def engine(app: FastAPI, probe: Probe, **options: int) -> GroupCommit[int, int]:
    return GroupCommit(sessionmaker=app.state.sessionmaker, write=probe.write, what="numbers", **options)


@pytest.mark.usefixtures("probe_table")
class TestGroupCommit:
    async def test_writes_during_a_commit_share_the_next_group_and_wait_for_it(self, app: FastAPI) -> None:
        probe = Probe()
        probe.gate.clear()
        commit = engine(app, probe)
        first = asyncio.create_task(commit.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(commit.submit(n)) for n in range(1, 6)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [first, *rest])  # nobody is answered before its commit
        probe.gate.set()
        assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]  # each its own answer
        assert probe.groups == [[0], [1, 2, 3, 4, 5]]
        assert await stored(app) == [0, 1, 2, 3, 4, 5]
        await commit.close()

    async def test_a_refused_member_gets_its_own_error_and_its_neighbours_their_answers(self, app: FastAPI) -> None:
        commit = engine(app, Probe())
        answers = await asyncio.gather(*(commit.submit(n) for n in (1, REFUSED, 2)), return_exceptions=True)
        assert answers[0] == 10
        assert answers[2] == 20
        assert isinstance(answers[1], Refused)
        assert await stored(app) == [1, 2]
        await commit.close()

    async def test_a_neighbour_that_cannot_be_stored_sinks_nobody_else(self, app: FastAPI) -> None:
        probe = Probe()
        commit = engine(app, probe)
        answers = await asyncio.gather(*(commit.submit(n) for n in (1, -1, 2, 3)), return_exceptions=True)
        assert [answers[0], answers[2], answers[3]] == [10, 20, 30]
        assert isinstance(answers[1], DBAPIError)  # its own failure, and only its own
        assert probe.groups[0] == [1, -1, 2, 3]  # tried together first, then member by member
        assert await stored(app) == [1, 2, 3]
        await commit.close()

    async def test_a_failing_commit_answers_every_member_and_stores_nothing(self, app: FastAPI) -> None:
        commit = engine(app, Probe())
        answers = await asyncio.gather(*(commit.submit(n) for n in (1, COMMIT_FAILS, 2)), return_exceptions=True)
        assert all(isinstance(a, DBAPIError) for a in answers), answers
        assert await stored(app) == []
        assert await commit.submit(4) == 40  # the engine goes on with the next group
        await commit.close()

    async def test_a_caller_cancelled_before_its_group_is_left_out(self, app: FastAPI) -> None:
        probe = Probe()
        probe.gate.clear()
        commit = engine(app, probe)
        first = asyncio.create_task(commit.submit(1))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(commit.submit(2))
        stays = asyncio.create_task(commit.submit(3))
        await asyncio.sleep(0.05)
        gone.cancel()
        probe.gate.set()
        assert await first == 10
        assert await stays == 30
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert probe.groups == [[1], [3]]
        assert await stored(app) == [1, 3]
        await commit.close()

    async def test_close_cancels_the_callers_still_waiting(self, app: FastAPI) -> None:
        probe = Probe()
        probe.gate.clear()
        commit = engine(app, probe)
        waiting = asyncio.create_task(commit.submit(1))
        await asyncio.sleep(0.05)
        await commit.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await stored(app) == []

    async def test_without_writers_each_item_is_written_alone_by_its_caller(self, app: FastAPI) -> None:
        probe = Probe()
        commit = engine(app, probe, writers=0)
        assert await asyncio.gather(*(commit.submit(n) for n in (1, 2))) == [10, 20]
        assert probe.groups == [[1], [2]]

    async def test_in_a_callers_transaction_a_bad_neighbour_is_undone_alone(self, app: FastAPI) -> None:
        probe = Probe()
        async with app.state.sessionmaker() as session, session.begin():
            answers = await write_in(session=session, items=[1, -1, REFUSED, 2], write=probe.write)
        assert [answers[0], answers[3]] == [10, 20]
        assert isinstance(answers[1], DBAPIError)
        assert isinstance(answers[2], Refused)
        assert await stored(app) == [1, 2]
