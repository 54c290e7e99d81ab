"""Console sign-in throttling (issue 22, row 10): per user name and client address, progressive,
counted atomically; a stranger's failures never lock the account owner out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api_service.config import Settings
from api_service.console import service
from api_service.main import create_app
from api_service.models import ConsoleSignInFailure
from tests.conftest import ACCOUNT_TOKEN
from tests.console.conftest import csrf_of, sign_in

pytestmark = pytest.mark.asyncio

STRANGER, OWNER = "203.0.113.66", "198.51.100.7"
WRONG = "not-the-account-token"
Browser = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser(app: FastAPI, settings: Settings) -> Browser:
    """`async with browser(ip, **settings)`: a client at that address (the app's own settings, or others)."""

    @asynccontextmanager
    async def make(client_ip: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with app_with(app, settings, overrides) as application:
            transport = httpx.ASGITransport(app=application, client=(client_ip, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test") as c:
                yield c

    return make


@asynccontextmanager
async def app_with(app: FastAPI, settings: Settings, overrides: dict[str, Any]) -> AsyncIterator[FastAPI]:
    if not overrides:
        yield app
        return
    other = create_app(settings.model_copy(update=overrides))
    async with other.router.lifespan_context(other):
        yield other


async def failures(app: FastAPI, client_ip: str, username: str = "admin") -> int:
    async with app.state.sessionmaker() as session:
        counted = await session.scalar(
            select(ConsoleSignInFailure.failures).where(
                ConsoleSignInFailure.username == username, ConsoleSignInFailure.client_ip == client_ip
            )
        )
    return counted or 0


async def wrong_passwords_at_once(client: httpx.AsyncClient, count: int) -> list[int]:
    """`count` sign-ins with a wrong password sent together from one browser (one form, one cookie)."""
    form = await client.get("/console/sign-in")
    data = {"csrf_token": csrf_of(form.text), "username": "admin", "password": "wrong", "next": "/console/servers"}
    answers = await asyncio.gather(*(client.post("/console/sign-in", data=data) for _ in range(count)))
    return [a.status_code for a in answers]


class TestStrangerCannotLockTheOwnerOut:
    async def test_ten_failures_from_one_address_leave_the_owner_free_at_another(self, browser: Browser) -> None:
        async with browser(STRANGER) as stranger:
            statuses = [(await sign_in(stranger, password="guess")).status_code for _ in range(10)]
        assert set(statuses) <= {401, 429}
        async with browser(OWNER) as owner:
            signed = await sign_in(owner, password=ACCOUNT_TOKEN)
            assert signed.status_code == 303, signed.text
            assert "Signed in as <strong>admin</strong>" in (await owner.get("/console/servers")).text
        assert 429 in statuses  # the stranger's own address is throttled


class TestFailuresAreCountedAtomically:
    async def test_forty_parallel_failures_are_all_counted(self, app: FastAPI, browser: Browser) -> None:
        async with browser(STRANGER, console_failures_before_delay=100, console_failures_per_ip=1000) as stranger:
            statuses = await wrong_passwords_at_once(stranger, 40)
        assert statuses == [401] * 40
        assert await failures(app, STRANGER) == 40

    async def test_parallel_tries_past_the_allowance_are_refused_without_a_check(
        self, app: FastAPI, browser: Browser, settings: Settings
    ) -> None:
        async with browser(STRANGER) as stranger:
            statuses = await wrong_passwords_at_once(stranger, 40)
        checked = statuses.count(401)
        # Each checked password is a counted failure; the rest waited (429), none slipped past.
        assert checked + statuses.count(429) == 40
        assert settings.console_failures_before_delay <= checked < 40
        assert await failures(app, STRANGER) == checked


class TestProgressiveDelays:
    async def test_each_failure_past_the_allowance_doubles_the_wait(self, app: FastAPI, settings: Settings) -> None:
        t0 = datetime.now(UTC)

        async def attempt(at: datetime, password: str = WRONG, client_ip: str = STRANGER) -> service.SignInResult:
            async with app.state.sessionmaker() as session, session.begin():
                return await service.sign_in(
                    session=session, settings=settings, username="admin", password=password, client_ip=client_ip, now=at
                )

        free = settings.console_failures_before_delay
        for _ in range(free):
            assert await attempt(t0) == service.SignInResult()
        waits = []
        at = t0
        for _ in range(4):
            refused = await attempt(at)
            assert refused.retry_after is not None
            waits.append(refused.retry_after)
            at += timedelta(seconds=refused.retry_after)
            assert await attempt(at) == service.SignInResult()  # counted, and the next wait is longer
        assert waits == [1, 2, 4, 8]
        # The owner at another address is not held back; the failures from there are the stranger's.
        assert (await attempt(at, password=ACCOUNT_TOKEN, client_ip=OWNER)).token is not None
        # The longest wait is the window; after a quiet window the count starts again.
        later = at + timedelta(seconds=settings.console_failure_window_seconds + 1)
        assert await attempt(later) == service.SignInResult()
        assert await failures(app, STRANGER) == 1
