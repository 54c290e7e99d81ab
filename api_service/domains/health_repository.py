"""SQL of sender health: the stored verdicts of domains and source IPs, and the sending figures
the bounce and complaint rates come from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.models import Bounce, Domain, DomainHealth, Message, MessageRecipient, RecipientStatus, SourceIpHealth
from shared.constants import BounceType

HARD_BOUNCES = (BounceType.HARD_BOUNCE, BounceType.BAD_EMAIL_ADDRESS)


async def get_domain_health(*, session: AsyncSession, domain_id: int) -> DomainHealth | None:
    return await session.get(DomainHealth, domain_id, populate_existing=True)


async def save_domain_health(
    *, session: AsyncSession, domain_id: int, checked_at: datetime, checks: list[dict[str, Any]], report_addresses: list[str] | None
) -> None:
    """Insert or replace a domain's verdicts; `report_addresses` None keeps the stored ones (DNS failed)."""
    values = {"domain_id": domain_id, "checked_at": checked_at, "checks": checks, "report_addresses": report_addresses or []}
    stmt = insert(DomainHealth).values(values)
    keep = {} if report_addresses is not None else {"report_addresses": DomainHealth.report_addresses}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DomainHealth.domain_id],
            set_={
                "checked_at": stmt.excluded.checked_at,
                "checks": stmt.excluded.checks,
                "report_addresses": stmt.excluded.report_addresses,
            }
            | keep,
        )
    )


async def all_domain_health(*, session: AsyncSession, limit: int) -> list[tuple[Domain, DomainHealth | None]]:
    """Every domain (by name) with its stored verdicts, if any."""
    stmt = select(Domain, DomainHealth).outerjoin(DomainHealth, DomainHealth.domain_id == Domain.id).order_by(Domain.name).limit(limit)
    return [(domain, row) for domain, row in (await session.execute(stmt)).all()]


async def update_domain_health(
    *, session: AsyncSession, domain_id: int, checked_at: datetime, checks: list[dict[str, Any]], report_addresses: list[str] | None
) -> None:
    """Store a worker's verdicts on the row its claim made (gone, with the domain, if it was deleted meanwhile);
    `report_addresses` None keeps the stored ones."""
    values: dict[str, Any] = {"checked_at": checked_at, "checks": checks}
    if report_addresses is not None:
        values["report_addresses"] = report_addresses
    await session.execute(update(DomainHealth).where(DomainHealth.domain_id == domain_id).values(values))


async def ip_health(*, session: AsyncSession, ips: list[str]) -> dict[str, SourceIpHealth]:
    if not ips:
        return {}
    rows = (
        await session.execute(select(SourceIpHealth).where(SourceIpHealth.ip.in_(ips)).execution_options(populate_existing=True))
    ).scalars()
    return {row.ip: row for row in rows}


async def save_ip_health(*, session: AsyncSession, ip: str, checked_at: datetime, checks: list[dict[str, Any]]) -> None:
    stmt = insert(SourceIpHealth).values(ip=ip, checked_at=checked_at, checks=checks)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[SourceIpHealth.ip], set_={"checked_at": stmt.excluded.checked_at, "checks": stmt.excluded.checks}
        )
    )


async def claim_due_domains(*, session: AsyncSession, checked_before: datetime, now: datetime, limit: int) -> list[Domain]:
    """Domains whose health was not checked since `checked_before`, marked as checked now (a lease:
    another worker skips them while this one asks DNS, outside any transaction)."""
    stmt = (
        select(Domain)
        .outerjoin(DomainHealth, DomainHealth.domain_id == Domain.id)
        .where(or_(DomainHealth.checked_at.is_(None), DomainHealth.checked_at < checked_before))
        .order_by(DomainHealth.checked_at.asc().nulls_first(), Domain.id)
        .limit(limit)
        .with_for_update(of=Domain, skip_locked=True)
    )
    domains = list((await session.execute(stmt)).scalars().all())
    for domain in domains:
        stmt_lease = insert(DomainHealth).values(domain_id=domain.id, checked_at=now, checks=[], report_addresses=[])
        await session.execute(stmt_lease.on_conflict_do_update(index_elements=[DomainHealth.domain_id], set_={"checked_at": now}))
    return domains


async def claim_due_ips(*, session: AsyncSession, ips: list[str], checked_before: datetime, now: datetime) -> list[str]:
    """Of `ips`, those not checked since `checked_before`, marked as checked now."""
    if not ips:
        return []
    stmt = insert(SourceIpHealth).values([{"ip": ip, "checked_at": now, "checks": []} for ip in ips])
    claim = stmt.on_conflict_do_update(
        index_elements=[SourceIpHealth.ip], set_={"checked_at": now}, where=SourceIpHealth.checked_at < checked_before
    ).returning(SourceIpHealth.ip)
    return [ip for (ip,) in (await session.execute(claim)).all()]


async def sending_figures(*, session: AsyncSession, domain: str, since: datetime) -> tuple[int, int, int]:
    """Recipients tried (delivered or bounced), hard bounces and spam complaints of mail From the domain since `since`."""
    await session.execute(text("SET LOCAL statement_timeout = '10s'"))
    from_domain = func.lower(func.split_part(Message.from_email, "@", 2))
    sent = await session.scalar(
        select(func.count())
        .select_from(MessageRecipient)
        .join(Message, Message.id == MessageRecipient.message_id)
        .where(
            Message.created_at >= since,
            from_domain == domain,
            MessageRecipient.status.in_([RecipientStatus.DELIVERED, RecipientStatus.BOUNCED]),
        )
    )
    bounce_domain = func.lower(func.split_part(Bounce.from_email, "@", 2))
    rows = (
        await session.execute(
            select(Bounce.type, func.count())
            .where(Bounce.bounced_at >= since, bounce_domain == domain, Bounce.type.in_([*HARD_BOUNCES, BounceType.SPAM_COMPLAINT]))
            .group_by(Bounce.type)
        )
    ).all()
    by_type = {BounceType(kind): int(count) for kind, count in rows}
    return int(sent or 0), sum(by_type.get(t, 0) for t in HARD_BOUNCES), by_type.get(BounceType.SPAM_COMPLAINT, 0)


async def domains_for_report_address(*, session: AsyncSession, address: str) -> list[int]:
    """Domains whose DMARC or TLS-RPT record names this report address."""
    stmt = select(DomainHealth.domain_id).where(DomainHealth.report_addresses.contains([address.lower()]))
    return list((await session.execute(stmt)).scalars().all())
