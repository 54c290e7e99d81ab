"""The console's audit events, through one function.

Sign-ins (and failed ones), role changes, two-factor changes and disabled users are reported here:
logged on `postgate.console.audit` and appended to the audit log (`api_service.audit`) in the
caller's transaction. A password sign-in is left to the audit log's own record of every
`POST /console/sign-in` (with its outcome), so it is not written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import service as audit

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
    if (
        action.startswith("sign_in.")
        and action != "sign_in.second_factor_failed"
        and (details or {}).get("method", "password") == "password"
    ):
        return
    await audit.record(
        session=session,
        actor=actor if ":" in actor or actor.startswith("shell") else f"user:{actor}",
        action=action,
        target_type="console-user" if target else "",
        target_id=target,
        after=dict(details) if details else None,
        ip=client_ip or "",
        outcome="failed" if action.endswith("failed") else "ok",
    )
