"""Where the rate limit buckets live: PostgreSQL by default, Redis when `REDIS_URL` is set.

PostgreSQL is the default because it is already there: one more moving part (and one more thing
to run highly available) only for rate limits is not worth it at Postgate's scale, and with leases
(`core.ratelimit`) a busy token costs a round trip per batch of requests, not per request. Redis
is for a deployment that already runs it, or whose API processes are so many that the bucket rows
become hot in PostgreSQL. Both run the same GCRA step on the store's own clock, so API processes
on machines with different clocks agree.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from api_service.core.gcra import Rate, Taken
from api_service.operations import repository

POOL_SIZE = 2  # calls are per token and leased: a busy process needs one or two connections

# `core.gcra.take` in Lua. Lua numbers are doubles: integers are exact below 2**53, and
# microseconds since 1970 stay below that until the year 2255. `%d` writes them without an exponent.
TAKE_LUA = """
local want = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now)
local granted = math.max(0, math.min(want, math.floor((now + capacity - base) / interval)))
local new_tat = base + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
end
return {granted, string.format('%d', new_tat), string.format('%d', now)}
"""


class PostgresStore:
    """An UNLOGGED table, through a small asyncpg pool of its own: a saturated request pool must
    not hold up the limiter, nor its failures the requests."""

    name = "postgresql"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._creating:  # the first requests for several tokens arrive together
                if self._pool is None:
                    # min_size=0: no connection at start-up, so the API starts while the database is down.
                    self._pool = await asyncpg.create_pool(self.database_url, min_size=0, max_size=POOL_SIZE)
        return self._pool

    async def take(self, *, key: str, want: int, rate: Rate, now: int | None = None) -> Taken:
        pool = await self._get_pool()
        async with pool.acquire() as connection:
            granted, tat, at = await repository.take_tokens(
                connection=connection, key=key, want=want, interval=rate.interval, capacity=rate.capacity, burst=rate.burst, now=now
            )
        return Taken(granted=granted, tat=tat, now=at)

    async def prune(self) -> int:
        """Delete full buckets (they are the same as none); returns how many."""
        pool = await self._get_pool()
        async with pool.acquire() as connection:
            return await repository.prune_buckets(connection=connection)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class RedisStore:
    """One key per bucket holding its tat, expiring when the bucket would be full again."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "postgate:rl:", timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis  # optional dependency: only when REDIS_URL is set

        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script: Any = self._client.register_script(TAKE_LUA)

    async def take(self, *, key: str, want: int, rate: Rate, now: int | None = None) -> Taken:
        granted, tat, at = await self._script(
            keys=[self.prefix + key], args=[want, rate.interval, rate.capacity, -1 if now is None else now]
        )
        return Taken(granted=int(granted), tat=int(tat), now=int(at))

    async def prune(self) -> int:
        return 0  # keys expire by themselves

    async def close(self) -> None:
        await self._client.aclose()
