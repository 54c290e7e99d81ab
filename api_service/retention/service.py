"""What retention deletes, and in which order.

Each kind of record is deleted by the package that writes its table; this module only lists them.
Messages go first: their recipients (the delivery queue rows), events, opens, clicks and raw MIME go
with them through ON DELETE CASCADE, and a message with a recipient still to be delivered is never
expired. Bounces and their raw sources follow Postmark's retention; suppressions are not touched.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import service as audit
from api_service.bounces import service as bounces
from api_service.bulk import service as bulk
from api_service.dmarc import service as dmarc
from api_service.email import service as email
from api_service.inbound import service as inbound
from api_service.messages import service as messages
from api_service.retention import repository
from api_service.servers import service as servers
from api_service.webhooks import service as webhooks

# A purge transaction that would wait for a row or table lock longer than this gives up (and the
# next round tries again): the purge may be slow, sending may not wait for it.
LOCK_WAIT_MS = 1000


class ServerPurge(Protocol):
    def __call__(self, *, session: AsyncSession, server_id: int, days: int, limit: int) -> Awaitable[int]: ...


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of record that expires with its server's retention."""

    name: str
    purge: ServerPurge


KINDS: tuple[Kind, ...] = (
    Kind("messages", messages.purge_expired),
    Kind("bounces", bounces.purge_expired),
    Kind("webhook_requests", webhooks.purge_finished),
    Kind("bulk_requests", bulk.purge_completed),
    Kind("inbound_messages", inbound.purge_expired),
)
IDEMPOTENCY_KEYS = "idempotency_keys"
# DMARC and TLS reports belong to domains, which are the account's, not a server's: kept RETENTION_DAYS.
REPORTS = "dmarc_reports"
AUDIT_EVENTS = "audit_events"


async def retention_days(*, session: AsyncSession, default_days: int) -> dict[int, int]:
    """Days kept, by server id."""
    return await servers.retention_days(session=session, default_days=default_days)


async def purge_batch(*, session: AsyncSession, kind: Kind, server_id: int, days: int, limit: int) -> int:
    """One batch of one kind for one server, in the caller's transaction."""
    await repository.bound_lock_waits(session=session, milliseconds=LOCK_WAIT_MS)
    return await kind.purge(session=session, server_id=server_id, days=days, limit=limit)


async def purge_idempotency_keys(*, session: AsyncSession, limit: int) -> int:
    await repository.bound_lock_waits(session=session, milliseconds=LOCK_WAIT_MS)
    return await email.purge_idempotency_keys(session=session, limit=limit)


async def purge_reports(*, session: AsyncSession, days: int, limit: int) -> int:
    await repository.bound_lock_waits(session=session, milliseconds=LOCK_WAIT_MS)
    return await dmarc.purge_expired(session=session, days=days, limit=limit)


async def purge_audit_events(*, session: AsyncSession, days: int, limit: int) -> int:
    """One batch of audit events older than AUDIT_RETENTION_DAYS (the audit log's own retention)."""
    return await audit.purge(session=session, days=days, limit=limit)
