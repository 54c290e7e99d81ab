"""Alembic environment: async, with the URL from DATABASE_URL (or `-x url=…`)."""

from __future__ import annotations

import asyncio
import time
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from api_service.config import get_settings
from api_service.db import async_database_url
from api_service.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    return async_database_url(url or get_settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


# pg_advisory_lock key shared by every Postgate process that migrates ("postgate" in ASCII).
MIGRATION_LOCK_KEY = 0x706F73746761_7465
LOCK_POLL_SECONDS = 0.5


def do_run_migrations(connection: Connection) -> None:
    # Replicas started together all run `alembic upgrade head`: the first takes the lock and
    # migrates, the others wait here and then find the database at head. The lock is the
    # session's, so it is held across the per-revision transactions and released on disconnect.
    # Polled rather than waited for in pg_advisory_lock: a session blocked there holds a snapshot,
    # and the holder's CREATE INDEX CONCURRENTLY waits for every older snapshot to go (a deadlock).
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}).scalar_one():
        connection.rollback()
        time.sleep(LOCK_POLL_SECONDS)
    # Set after the advisory wait, which may rightly last as long as another replica's upgrade.
    # A DDL statement queued behind a long transaction would block every query on its table
    # behind it; failing fast (the revision rolls back, a re-run resumes) is the safe choice.
    timeout_ms = int(get_settings().migration_lock_timeout_seconds * 1000)
    connection.execute(text(f"SET lock_timeout = {timeout_ms}"))
    connection.commit()
    try:
        # One transaction per revision: a failure keeps the revisions already applied, and no
        # lock taken by an early revision is held until the last one ends.
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
