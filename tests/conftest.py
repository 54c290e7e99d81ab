"""Test database: a fresh PostgreSQL database per run, migrated with Alembic, dropped at the end.

DATABASE_URL selects the server (any database on it; a new one is created beside it); without
it the embedded server under ./.data/ is used. Tables are truncated after each test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from api_service.config import Settings
from api_service.devtools.embedded_db import drop_database, ensure_database, migrate, start_embedded, with_database
from api_service.main import create_app
from api_service.models import Base

ACCOUNT_TOKEN = "test-account-token"

# Property tests check correctness, not speed: Hypothesis' 200 ms deadline per example only
# measures how busy the machine is (speed is `make bench`'s job).
hypothesis_settings.register_profile("postgate", deadline=None)
hypothesis_settings.load_profile("postgate")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    handle: Any = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        handle, base = start_embedded()
    url = with_database(base, f"postgate_test_{secrets.token_hex(4)}")
    ensure_database(url)
    migrate(url)
    yield url
    drop_database(url)
    del handle


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Most tests create a signature or domain and send from it at once, as `make run` allows;
    # the confirmation flow is tested with sender_auto_confirm off (tests/api/senders/). The tests'
    # receivers listen on loopback, which webhooks may not reach unless allowed; the ARF fixtures
    # come from hotmail.example, a feedback loop for recipients of other domains.
    return Settings(
        database_url=database_url,
        account_token=ACCOUNT_TOKEN,
        db_pool_size=5,
        db_max_overflow=5,
        sender_auto_confirm=True,
        webhook_allowed_networks="127.0.0.0/8",
        feedback_loop_senders="hotmail.example",
        # No DMARC look-ups through the system's DNS (nothing leaves loopback), and "OK" stays "OK";
        # tests/api/email/test_guardrails.py turns them on with a DNS server of its own.
        bulk_sender_checks=False,
    )


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: FastAPI = request.getfixturevalue("app")
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with application.state.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://postgate.test", headers={"Accept": "application/json"}) as c:
        yield c
