"""SQL for sending: look-ups batched per request, and bulk inserts of messages and recipients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Domain, IdempotencyKey, Message, MessageRecipient, MessageStream, SenderSignature, Suppression


async def streams(*, session: AsyncSession, server_id: int) -> dict[str, MessageStream]:
    rows = (await session.execute(select(MessageStream).where(MessageStream.server_id == server_id))).scalars().all()
    return {row.stream_id: row for row in rows}


async def signature_reply_tos(*, session: AsyncSession, emails: set[str]) -> dict[str, str]:
    """Confirmed signatures among `emails` (lower-cased), with their Reply-To."""
    if not emails:
        return {}
    stmt = select(SenderSignature.email, SenderSignature.reply_to_email).where(
        SenderSignature.email.in_(emails), SenderSignature.confirmed.is_(True)
    )
    return dict((await session.execute(stmt)).all())


async def known_domains(*, session: AsyncSession, names: set[str]) -> set[str]:
    if not names:
        return set()
    return set((await session.execute(select(Domain.name).where(Domain.name.in_(names)))).scalars().all())


async def suppressed(*, session: AsyncSession, server_id: int, emails: set[str]) -> set[tuple[str, str]]:
    """(stream, email) pairs among `emails` that are suppressed."""
    if not emails:
        return set()
    stmt = select(Suppression.message_stream, Suppression.email).where(Suppression.server_id == server_id, Suppression.email.in_(emails))
    return set((await session.execute(stmt)).all())


async def insert_messages(*, session: AsyncSession, messages: list[dict[str, Any]], recipients: list[dict[str, Any]]) -> None:
    if messages:
        await session.execute(insert(Message), messages)
    if recipients:
        await session.execute(insert(MessageRecipient), recipients)


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


def now_rows(recipients: list[str], *, message_id: Any, kinds: dict[str, str], at: datetime) -> list[dict[str, Any]]:
    return [
        {"message_id": message_id, "email": r, "kind": kinds.get(r.lower(), "to"), "status": "queued", "next_attempt_at": at}
        for r in recipients
    ]
