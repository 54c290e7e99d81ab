from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Domain


async def get_domain(*, session: AsyncSession, domain_id: int) -> Domain | None:
    return await session.get(Domain, domain_id)


async def get_domain_by_name(*, session: AsyncSession, name: str) -> Domain | None:
    return (await session.execute(select(Domain).where(Domain.name == name.lower()))).scalar_one_or_none()


async def list_domains(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[Domain]]:
    total = (await session.execute(select(func.count()).select_from(Domain))).scalar_one()
    rows = (await session.execute(select(Domain).order_by(Domain.id).limit(count).offset(offset))).scalars().all()
    return total, list(rows)


async def add_domain(*, session: AsyncSession, domain: Domain) -> Domain:
    session.add(domain)
    await session.flush()
    return domain


async def delete_domain(*, session: AsyncSession, domain: Domain) -> None:
    await session.delete(domain)
    await session.flush()


async def signing_keys(*, session: AsyncSession, names: set[str]) -> dict[str, tuple[str, str]]:
    """Domain → (selector, private key PEM) for the domains that have one."""
    if not names:
        return {}
    stmt = select(Domain.name, Domain.dkim_selector, Domain.dkim_private_key).where(Domain.name.in_(names), Domain.dkim_private_key != "")
    return {name: (selector, key) for name, selector, key in (await session.execute(stmt)).all()}
