"""SQL for sending: the look-ups of a whole request in one round trip, and idempotency keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Text, bindparam, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import Inactive
from api_service.models import IdempotencyKey
from shared.constants import SuppressionOrigin, SuppressionReason

UNSUBSCRIBE = "Unsubscribe"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    stream_type: str
    archived: bool
    unsubscribe_handling: str = "None"
    paused_reason: str | None = None
    """Why the stream is paused (it refuses new mail), None when it is not."""


@dataclass(slots=True)
class SendLookups:
    """What sending needs to know, fetched in one round trip for a whole request."""

    streams: dict[str, StreamInfo]
    reply_tos: dict[str, str]
    """Confirmed signatures: address → Reply-To."""
    unconfirmed: set[str]
    """Signatures still waiting for their confirmation link to be followed."""
    domains: set[str]
    """Confirmed domains: every address on them may send."""
    suppressed: dict[tuple[str, str], Inactive]
    """(stream, lower-cased address) → why and since when it is inactive."""
    aligned: set[str] = field(default_factory=set)
    """Domains whose mail leaves with the envelope sender on their verified return path (SPF aligned)."""


LOOKUPS = text(
    """
    SELECT
      (SELECT coalesce(json_object_agg(stream_id, json_build_array(stream_type, archived_at IS NOT NULL, unsubscribe_handling, CASE WHEN paused_at IS NOT NULL THEN paused_reason END)), '{}')
         FROM message_streams WHERE server_id = :server_id) AS streams,
      (SELECT coalesce(json_object_agg(email, reply_to_email), '{}')
         FROM sender_signatures WHERE email = ANY(:emails) AND confirmed) AS signatures,
      (SELECT coalesce(array_agg(email), '{}') FROM sender_signatures WHERE email = ANY(:emails) AND NOT confirmed) AS unconfirmed,
      (SELECT coalesce(array_agg(name), '{}') FROM domains WHERE name = ANY(:domains) AND confirmed) AS domains,
      (SELECT coalesce(array_agg(name), '{}') FROM domains WHERE name = ANY(:domains) AND return_path_verified) AS aligned,
      (SELECT coalesce(json_agg(json_build_array(message_stream, email, reason, origin, created_at)), '[]')
         FROM suppressions WHERE server_id = :server_id AND email = ANY(:recipients)) AS suppressed
    """
).bindparams(
    bindparam("emails", type_=ARRAY(Text)),
    bindparam("domains", type_=ARRAY(Text)),
    bindparam("recipients", type_=ARRAY(Text)),
)


def _inactive(email: str, reason: str, origin: str, since: str) -> Inactive:
    # A recipient's own manual suppression is the unsubscribe link (or List-Unsubscribe) at work.
    if reason == SuppressionReason.MANUAL_SUPPRESSION and origin == SuppressionOrigin.RECIPIENT:
        reason = UNSUBSCRIBE
    return Inactive(email=email, reason=reason, since=datetime.fromisoformat(since))


async def send_lookups(*, session: AsyncSession, server_id: int, emails: set[str], domains: set[str], recipients: set[str]) -> SendLookups:
    """Streams, signatures (confirmed ones with Reply-To), confirmed domains and suppressed recipients."""
    row = (
        await session.execute(
            LOOKUPS, {"server_id": server_id, "emails": list(emails), "domains": list(domains), "recipients": list(recipients)}
        )
    ).one()
    streams_json, signatures_json, unconfirmed, domain_names, aligned, suppressed_json = row
    streams = json.loads(streams_json) if isinstance(streams_json, str) else streams_json
    signatures = json.loads(signatures_json) if isinstance(signatures_json, str) else signatures_json
    suppressed = json.loads(suppressed_json) if isinstance(suppressed_json, str) else suppressed_json
    return SendLookups(
        streams={k: StreamInfo(stream_type=v[0], archived=v[1], unsubscribe_handling=v[2], paused_reason=v[3]) for k, v in streams.items()},
        reply_tos=dict(signatures),
        unconfirmed=set(unconfirmed),
        domains=set(domain_names),
        aligned=set(aligned),
        suppressed={(stream, email): _inactive(email, reason, origin, since) for stream, email, reason, origin, since in suppressed},
    )


async def reserve_idempotency_key(
    *, session: AsyncSession, server_id: int, endpoint: str, key: str, request_sha256: str, window_seconds: float
) -> bool:
    """Claim the key in this transaction; a key older than the window is claimed afresh. A
    concurrent holder makes this wait for its outcome (the unique index's row lock)."""
    insert = pg_insert(IdempotencyKey).values(server_id=server_id, endpoint=endpoint, key=key, request_sha256=request_sha256)
    stmt = insert.on_conflict_do_update(
        index_elements=[IdempotencyKey.server_id, IdempotencyKey.endpoint, IdempotencyKey.key],
        set_={"request_sha256": insert.excluded.request_sha256, "response_status": None, "response_body": None, "created_at": func.now()},
        where=IdempotencyKey.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, window_seconds),
    ).returning(IdempotencyKey.key)
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def get_idempotency_key(*, session: AsyncSession, server_id: int, endpoint: str, key: str) -> IdempotencyKey | None:
    stmt = select(IdempotencyKey).where(
        IdempotencyKey.server_id == server_id, IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def store_idempotent_response(*, session: AsyncSession, server_id: int, endpoint: str, key: str, status: int, body: Any) -> None:
    stmt = (
        update(IdempotencyKey)
        .where(IdempotencyKey.server_id == server_id, IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key)
        .values(response_status=status, response_body=body)
    )
    await session.execute(stmt)


async def idempotency_keys_matching(*, session: AsyncSession, pattern: str, limit: int) -> list[IdempotencyKey]:
    """Up to `limit` keys whose stored response matches `pattern` (a PostgreSQL regular expression), locked."""
    stmt = (
        select(IdempotencyKey)
        .where(cast(IdempotencyKey.response_body, Text).op("~*")(pattern))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())


# Many keys in one statement each (the SMTP batch): each key is its own request digest, as SMTP keys are.
RESERVE_MANY = text(
    """
    INSERT INTO idempotency_keys (server_id, endpoint, key, request_sha256)
    SELECT :server_id, :endpoint, k, k FROM unnest(CAST(:keys AS text[])) AS k
    ON CONFLICT (server_id, endpoint, key) DO UPDATE
       SET request_sha256 = excluded.request_sha256, response_status = NULL, response_body = NULL, created_at = now()
     WHERE idempotency_keys.created_at < now() - make_interval(secs => :window_seconds)
    RETURNING key
    """
)

STORE_MANY = text(
    """
    UPDATE idempotency_keys AS i
       SET response_status = 200, response_body = CAST(v.body AS jsonb)
      FROM unnest(CAST(:keys AS text[]), CAST(:bodies AS text[])) AS v(key, body)
     WHERE i.server_id = :server_id AND i.endpoint = :endpoint AND i.key = v.key
    """
)


async def reserve_idempotency_keys(
    *, session: AsyncSession, server_id: int, endpoint: str, keys: list[str], window_seconds: float
) -> set[str]:
    """Claim the keys in this transaction; the keys claimed. A key not returned is held by an earlier
    or a concurrent request."""
    result = await session.execute(
        RESERVE_MANY, {"server_id": server_id, "endpoint": endpoint, "keys": keys, "window_seconds": float(window_seconds)}
    )
    return {str(key) for key in result.scalars()}


async def store_idempotent_responses(*, session: AsyncSession, server_id: int, endpoint: str, bodies: dict[str, str]) -> None:
    """Record the 200 answer (JSON text) of each claimed key."""
    keys = list(bodies)
    await session.execute(STORE_MANY, {"server_id": server_id, "endpoint": endpoint, "keys": keys, "bodies": [bodies[k] for k in keys]})


# --- retention -----------------------------------------------------------------------------------

DELETE_EXPIRED_KEYS = text(
    """
    DELETE FROM idempotency_keys WHERE (server_id, endpoint, key) IN (
        SELECT server_id, endpoint, key FROM idempotency_keys
         WHERE created_at < now() - make_interval(secs => :window_seconds)
         ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)


async def delete_expired_idempotency_keys(*, session: AsyncSession, window_seconds: float, limit: int) -> int:
    """Up to `limit` keys older than the window; such a key would be claimed afresh anyway."""
    result = await session.execute(DELETE_EXPIRED_KEYS, {"window_seconds": window_seconds, "limit": limit})
    return int(result.rowcount)  # type: ignore[attr-defined]
