"""The idempotency records of a batch of SMTP submissions, one statement for all of them.

Intake's `begin_idempotent` / `finish_idempotent` take a round trip per message; a batch of 50
paid 100 round trips for them, more than for storing the messages. These two statements do the
same for the rows of the `smtp` endpoint (the same table, rows and semantics as intake's, which
still handles everything past the fast path: a key that is already taken).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.schemas.smtp import SmtpSubmissionResult

RESERVE = text(
    """
    INSERT INTO idempotency_keys (server_id, endpoint, key, request_sha256)
    SELECT :server_id, :endpoint, k, k FROM unnest(CAST(:keys AS text[])) AS k
    ON CONFLICT (server_id, endpoint, key) DO UPDATE
       SET request_sha256 = excluded.request_sha256, response_status = NULL, response_body = NULL, created_at = now()
     WHERE idempotency_keys.created_at < now() - make_interval(secs => :window_seconds)
    RETURNING key
    """
)

STORE = text(
    """
    UPDATE idempotency_keys AS i
       SET response_status = 200, response_body = CAST(v.body AS jsonb)
      FROM unnest(CAST(:keys AS text[]), CAST(:bodies AS text[])) AS v(key, body)
     WHERE i.server_id = :server_id AND i.endpoint = :endpoint AND i.key = v.key
    """
)


async def reserve_keys(*, session: AsyncSession, server_id: int, endpoint: str, keys: list[str], window_seconds: float) -> set[str]:
    """Claim the keys (each its own request digest, as SMTP keys are) in this transaction; the keys
    claimed. A key not returned is held by an earlier or a concurrent submission."""
    result = await session.execute(
        RESERVE, {"server_id": server_id, "endpoint": endpoint, "keys": keys, "window_seconds": float(window_seconds)}
    )
    return {str(key) for key in result.scalars()}


async def store_responses(*, session: AsyncSession, server_id: int, endpoint: str, responses: dict[str, SmtpSubmissionResult]) -> None:
    """Record the 200 answer of each claimed key, for a retry to be answered with."""
    keys = list(responses)
    bodies = [responses[key].model_dump_json() for key in keys]
    await session.execute(STORE, {"server_id": server_id, "endpoint": endpoint, "keys": keys, "bodies": bodies})
