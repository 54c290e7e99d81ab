"""SQL for sending: look-ups batched per request, and bulk inserts of messages and recipients."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, Table, Text, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import IdempotencyKey, Message, MessageRecipient


@dataclass(frozen=True, slots=True)
class StreamInfo:
    stream_type: str
    archived: bool


@dataclass(slots=True)
class SendLookups:
    """What sending needs to know, fetched in one round trip for a whole request."""

    streams: dict[str, StreamInfo]
    reply_tos: dict[str, str]
    domains: set[str]
    suppressed: set[tuple[str, str]]


LOOKUPS = text(
    """
    SELECT
      (SELECT coalesce(json_object_agg(stream_id, json_build_array(stream_type, archived_at IS NOT NULL)), '{}')
         FROM message_streams WHERE server_id = :server_id) AS streams,
      (SELECT coalesce(json_object_agg(email, reply_to_email), '{}')
         FROM sender_signatures WHERE email = ANY(:emails) AND confirmed) AS signatures,
      (SELECT coalesce(array_agg(name), '{}') FROM domains WHERE name = ANY(:domains)) AS domains,
      (SELECT coalesce(json_agg(json_build_array(message_stream, email)), '[]')
         FROM suppressions WHERE server_id = :server_id AND email = ANY(:recipients)) AS suppressed
    """
).bindparams(
    bindparam("emails", type_=ARRAY(Text)),
    bindparam("domains", type_=ARRAY(Text)),
    bindparam("recipients", type_=ARRAY(Text)),
)


async def send_lookups(*, session: AsyncSession, server_id: int, emails: set[str], domains: set[str], recipients: set[str]) -> SendLookups:
    """Streams, confirmed signatures (with Reply-To), known domains and suppressed recipients."""
    row = (
        await session.execute(
            LOOKUPS, {"server_id": server_id, "emails": list(emails), "domains": list(domains), "recipients": list(recipients)}
        )
    ).one()
    streams_json, signatures_json, domain_names, suppressed_json = row
    streams = json.loads(streams_json) if isinstance(streams_json, str) else streams_json
    signatures = json.loads(signatures_json) if isinstance(signatures_json, str) else signatures_json
    suppressed = json.loads(suppressed_json) if isinstance(suppressed_json, str) else suppressed_json
    return SendLookups(
        streams={k: StreamInfo(stream_type=v[0], archived=v[1]) for k, v in streams.items()},
        reply_tos=dict(signatures),
        domains=set(domain_names),
        suppressed={(stream, email) for stream, email in suppressed},
    )


async def insert_messages(*, session: AsyncSession, messages: list[dict[str, Any]], recipients: list[dict[str, Any]]) -> None:
    # Core inserts on the session's connection: the ORM's bulk path costs more than the SQL.
    connection = await session.connection()
    if messages:
        await connection.execute(MESSAGES.insert(), [_columns(m) for m in messages])
    if recipients:
        await connection.execute(RECIPIENTS.insert(), recipients)


MESSAGES = cast(Table, Message.__table__)
RECIPIENTS = cast(Table, MessageRecipient.__table__)


def _columns(row: dict[str, Any]) -> dict[str, Any]:
    """ORM attribute names to column names (only `metadata_` differs)."""
    if "metadata_" in row:
        row = dict(row)
        row["metadata"] = row.pop("metadata_")
    return row


async def reserve_idempotency_key(*, session: AsyncSession, server_id: int, endpoint: str, key: str, request_sha256: str) -> bool:
    """Claim the key in this transaction. A concurrent holder makes this wait for its outcome."""
    stmt = (
        pg_insert(IdempotencyKey)
        .values(server_id=server_id, endpoint=endpoint, key=key, request_sha256=request_sha256)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
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


def now_rows(
    recipients: list[str], *, message_id: Any, kinds: dict[str, str], at: datetime, default_kind: str = "to"
) -> list[dict[str, Any]]:
    """Delivery queue rows, due at once."""
    return [
        {"message_id": message_id, "email": r, "kind": kinds.get(r.lower(), default_kind), "status": "queued", "next_attempt_at": at}
        for r in recipients
    ]
