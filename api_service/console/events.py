"""The console's audit events, through one function.

Sign-ins (and failed ones), role changes, two-factor changes and disabled users are reported here.
For now they are logged on `postgate.console.audit`; the audit log (`api_service.audit`) records
them once it is merged, by changing this one function.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger("postgate.console.audit")


async def audit_event(
    *,
    session: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    client_ip: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """One console event: who (`actor`, a user name or `shell`), what (`action`, e.g. `user.disabled`),
    on what (`target`), from where, and what changed (never a secret)."""
    logger.info(
        "console audit: %s by %s on %s from %s %s",
        action,
        actor,
        target or "-",
        client_ip or "-",
        dict(details or {}),
        extra={"audit": True},
    )
