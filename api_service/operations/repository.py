"""All SQL of operations: one GCRA step on a rate limit bucket, pruning full buckets, and the
deployment figures a scrape reads. Every figure query runs on a partial index and is capped."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# `core.gcra.take` in SQL. A new key starts as a full bucket; the SET expressions all read the
# old row, and EXCLUDED.at_us carries the clock (the database's, unless a test passes one).
TAKE = """
INSERT INTO rate_limit_buckets AS b (key, tat_us, granted, at_us)
SELECT $1, n.us + least($2::int, $5::bigint) * $3::bigint, least($2::int, $5::bigint), n.us
FROM (SELECT coalesce($6::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS us) AS n
ON CONFLICT (key) DO UPDATE SET
    granted = greatest(0, least($2::int, (EXCLUDED.at_us + $4::bigint - greatest(b.tat_us, EXCLUDED.at_us)) / $3::bigint)),
    tat_us = greatest(b.tat_us, EXCLUDED.at_us)
        + greatest(0, least($2::int, (EXCLUDED.at_us + $4::bigint - greatest(b.tat_us, EXCLUDED.at_us)) / $3::bigint)) * $3::bigint,
    at_us = EXCLUDED.at_us
RETURNING granted, tat_us, at_us
"""

# A bucket whose tat has passed is full: the same as no row at all.
PRUNE = "DELETE FROM rate_limit_buckets WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


async def take_tokens(
    *, connection: asyncpg.Connection, key: str, want: int, interval: int, capacity: int, burst: int, now: int | None
) -> tuple[int, int, int]:
    """(granted, tat_us, now_us) after one atomic take."""
    # INSERT … ON CONFLICT DO UPDATE always returns its one row.
    row = await connection.fetchrow(TAKE, key, want, interval, capacity, burst, now)
    return int(row[0]), int(row[1]), int(row[2])


async def prune_buckets(*, connection: asyncpg.Connection) -> int:
    status = await connection.execute(PRUNE)
    return int(status.rsplit(" ", 1)[1])


# Queued and deferred recipients are what the partial index ix_message_recipients_due holds;
# pending webhooks are ix_webhook_deliveries_due. Counts stop at :cap so a scrape of a database
# with millions of queued rows stays a bounded index scan.
FIGURES = text("""
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM message_recipients
        WHERE status IN ('queued', 'deferred') LIMIT :cap) AS q) AS queued,
    (SELECT count(*) FROM (SELECT 1 FROM message_recipients
        WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now() LIMIT :cap) AS d) AS due,
    (SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0) FROM message_recipients
        WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now()) AS oldest_due_age,
    (SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' LIMIT :cap) AS w) AS outbox,
    (SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries
        WHERE status = 'pending' AND attempts > 0 LIMIT :cap) AS r) AS outbox_retrying,
    (SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0) FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()) AS outbox_oldest_due_age
""")


@dataclass(frozen=True, slots=True)
class Figures:
    queued: int
    due: int
    oldest_due_age: float
    outbox: int
    outbox_retrying: int
    outbox_oldest_due_age: float


async def figures(*, session: AsyncSession, cap: int) -> Figures:
    await session.execute(text("SET LOCAL statement_timeout = '2s'"))
    row = (await session.execute(FIGURES, {"cap": cap})).one()
    return Figures(
        queued=int(row.queued),
        due=int(row.due),
        oldest_due_age=max(0.0, float(row.oldest_due_age)),
        outbox=int(row.outbox),
        outbox_retrying=int(row.outbox_retrying),
        outbox_oldest_due_age=max(0.0, float(row.outbox_oldest_due_age)),
    )
