from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import SenderSignature


async def get_signature(*, session: AsyncSession, signature_id: int) -> SenderSignature | None:
    return await session.get(SenderSignature, signature_id)


async def get_signature_by_email(*, session: AsyncSession, email: str) -> SenderSignature | None:
    return (await session.execute(select(SenderSignature).where(SenderSignature.email == email.lower()))).scalar_one_or_none()


async def list_signatures(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[SenderSignature]]:
    total = (await session.execute(select(func.count()).select_from(SenderSignature))).scalar_one()
    rows = (await session.execute(select(SenderSignature).order_by(SenderSignature.id).limit(count).offset(offset))).scalars().all()
    return total, list(rows)


async def add_signature(*, session: AsyncSession, signature: SenderSignature) -> SenderSignature:
    session.add(signature)
    await session.flush()
    return signature


async def delete_signature(*, session: AsyncSession, signature: SenderSignature) -> None:
    await session.delete(signature)
    await session.flush()
