from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.listing import page_of
from api_service.models import Domain


async def get_domain(*, session: AsyncSession, domain_id: int, for_update: bool = False) -> Domain | None:
    return await session.get(Domain, domain_id, with_for_update=for_update or None)


async def get_domain_by_name(*, session: AsyncSession, name: str) -> Domain | None:
    return (await session.execute(select(Domain).where(Domain.name == name.lower()))).scalar_one_or_none()


async def list_domains(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[Domain]]:
    return await page_of(session=session, stmt=select(Domain), order_by=[Domain.id], count=count, offset=offset)


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


async def sending_domains(*, session: AsyncSession, names: set[str]) -> list[Domain]:
    """The domains of these names (the From domains of the messages a delivery batch sends)."""
    if not names:
        return []
    return list((await session.execute(select(Domain).where(Domain.name.in_(names)))).scalars().all())


async def verified_return_paths(*, session: AsyncSession) -> list[str]:
    """The verified return-path domains, sorted."""
    stmt = (
        select(Domain.return_path_domain)
        .where(Domain.return_path_verified.is_(True), Domain.return_path_domain != "")
        .distinct()
        .order_by(Domain.return_path_domain)
    )
    return list((await session.execute(stmt)).scalars().all())


async def is_verified_tracking_domain(*, session: AsyncSession, host: str) -> bool:
    stmt = select(Domain.id).where(Domain.tracking_domain == host, Domain.tracking_verified.is_(True)).limit(1)
    return (await session.execute(stmt)).first() is not None


async def claim_dns_checks(*, session: AsyncSession, checked_before: datetime, limit: int, cnames: bool = False) -> list[Domain]:
    """Domains whose DKIM key (or, with `cnames`, return-path or tracking domain) waits to be seen in
    DNS and that were not looked up since `checked_before`, locked (SKIP LOCKED: two workers share the work)."""
    waiting: list[ColumnElement[bool]] = [
        Domain.dkim_pending_selector != "",
        Domain.dkim_verified.is_(False),
        Domain.dkim_ed25519_pending_selector != "",
        and_(Domain.dkim_ed25519_selector != "", Domain.dkim_ed25519_verified.is_(False)),
    ]
    if cnames:
        waiting += [
            and_(Domain.return_path_domain != "", Domain.return_path_verified.is_(False)),
            and_(Domain.tracking_domain != "", Domain.tracking_verified.is_(False)),
        ]
    stmt = (
        select(Domain)
        .where(or_(*waiting), or_(Domain.dkim_checked_at.is_(None), Domain.dkim_checked_at < checked_before))
        .order_by(Domain.dkim_checked_at.asc().nulls_first(), Domain.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars().all())
