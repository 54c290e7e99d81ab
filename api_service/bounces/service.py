"""Bounce rules: activation lifts the recipient's suppression on the bounce's stream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import repository
from api_service.errors import NotFound, PostmarkError
from api_service.models import Bounce
from api_service.servers import repository as servers_repository
from api_service.webhooks import service as webhooks_service
from api_service.webhooks.payloads import subscription_change_payload
from shared.constants import BOUNCE_TYPES, BounceType, ErrorCode, SuppressionOrigin, SuppressionReason


async def get_bounce_or_raise(*, session: AsyncSession, server_id: int, bounce_id: int, for_update: bool = False) -> Bounce:
    bounce = await repository.get_bounce(session=session, server_id=server_id, bounce_id=bounce_id, for_update=for_update)
    if bounce is None:
        raise NotFound(ErrorCode.BOUNCE_NOT_FOUND, f"Bounce {bounce_id} was not found.")
    return bounce


async def activate(*, session: AsyncSession, server_id: int, bounce_id: int) -> Bounce:
    bounce = await get_bounce_or_raise(session=session, server_id=server_id, bounce_id=bounce_id, for_update=True)
    if not bounce.can_activate:
        raise PostmarkError(ErrorCode.BOUNCE_CANNOT_ACTIVATE, f"Bounces of type {bounce.type} cannot be activated.")
    await repository.reactivate_recipient(session=session, server_id=server_id, stream=bounce.message_stream, email=bounce.email)
    await session.refresh(bounce)
    return bounce


async def delivery_stats(*, session: AsyncSession, server_id: int) -> tuple[int, list[tuple[BounceType, int]]]:
    counts = dict(await repository.count_by_type(session=session, server_id=server_id))
    rows = [(t, counts[t.value]) for t in BOUNCE_TYPES if counts.get(t.value)]
    return await repository.count_inactive(session=session, server_id=server_id), rows


async def record_bounce(
    *,
    session: AsyncSession,
    server_id: int,
    bounce_type: BounceType,
    email: str,
    details: str,
    message_id: uuid.UUID | None = None,
    message_stream: str = "outbound",
    from_email: str = "",
    subject: str = "",
    tag: str = "",
    dump: bytes | None = None,
    content: str | None = None,
    bounced_at: datetime | None = None,
    metadata: dict[str, str] | None = None,
) -> Bounce:
    """Store a bounce; a type that deactivates also suppresses the recipient on its stream.

    The one place bounces are created (delivery failures, DSNs, SMTP API errors), so that
    suppression and webhooks follow the same rules whatever found the bounce.
    """
    info = BOUNCE_TYPES[bounce_type]
    bounce = Bounce(
        server_id=server_id,
        message_id=message_id,
        message_stream=message_stream,
        type=bounce_type.value,
        type_code=info.code,
        email=email,
        from_email=from_email,
        subject=subject,
        tag=tag,
        details=details.replace("\x00", ""),
        inactive=info.deactivates,
        can_activate=info.can_activate,
        dump=dump,
        content=content,
        bounced_at=bounced_at or datetime.now(UTC),
    )
    session.add(bounce)
    if info.deactivates:
        reason = SuppressionReason.SPAM_COMPLAINT if bounce_type is BounceType.SPAM_COMPLAINT else SuppressionReason.HARD_BOUNCE
        await repository.suppress(
            session=session,
            server_id=server_id,
            stream=message_stream,
            email=email,
            reason=reason.value,
            origin=SuppressionOrigin.RECIPIENT.value,
        )
    await session.flush()
    server = await servers_repository.get_server(session=session, server_id=server_id)
    if server is not None:
        await webhooks_service.bounce_recorded(session=session, server=server, bounce=bounce, metadata=metadata or {})
        if info.deactivates:
            await webhooks_service.event_recorded(
                session=session,
                server=server,
                stream=message_stream,
                trigger="SubscriptionChange",
                payload=subscription_change_payload(
                    server_id=server_id,
                    stream=message_stream,
                    message_id=str(message_id) if message_id else None,
                    recipient=email,
                    changed_at=bounce.bounced_at,
                    origin=SuppressionOrigin.RECIPIENT.value,
                    suppress=True,
                    reason=reason.value,
                    tag=tag,
                    metadata=metadata or {},
                ),
            )
    return bounce
