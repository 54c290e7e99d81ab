"""Engine and session factory: one engine per process, created in the app's lifespan."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

ASYNC_DRIVER = "postgresql+asyncpg"


def async_database_url(url: str) -> str:
    """Turn an ordinary `postgresql://` URL into the asyncpg form SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    query = dict(parsed.query)
    sslmode = query.pop("sslmode", None)
    if sslmode is not None:
        query["ssl"] = sslmode
    return parsed.set(drivername=ASYNC_DRIVER, query=query).render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, pool_timeout: float = 30) -> AsyncEngine:
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
