from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.listing import page_of
from api_service.models import SenderSignature


async def get_signature(*, session: AsyncSession, signature_id: int, for_update: bool = False) -> SenderSignature | None:
    return await session.get(SenderSignature, signature_id, with_for_update=for_update or None)


async def get_signature_by_token(*, session: AsyncSession, digest: str, for_update: bool = False) -> SenderSignature | None:
    stmt = select(SenderSignature).where(SenderSignature.confirmation_token_sha256 == digest)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_signature_by_email(*, session: AsyncSession, email: str) -> SenderSignature | None:
    return (await session.execute(select(SenderSignature).where(SenderSignature.email == email.lower()))).scalar_one_or_none()


async def list_signatures(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[SenderSignature]]:
    return await page_of(session=session, stmt=select(SenderSignature), order_by=[SenderSignature.id], count=count, offset=offset)


async def add_signature(*, session: AsyncSession, signature: SenderSignature) -> SenderSignature:
    session.add(signature)
    await session.flush()
    return signature


async def delete_signature(*, session: AsyncSession, signature: SenderSignature) -> None:
    await session.delete(signature)
    await session.flush()
