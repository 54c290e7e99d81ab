"""Suppression rules, and the one place suppressions are added or lifted.

Every change, whatever caused it (a hard bounce, a complaint, the API, a bounce activation), goes
through `suppress` or `lift`, so each fires the same SubscriptionChange webhook.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound, PostmarkError
from api_service.mail.addresses import normalise_email
from api_service.models import Server, Suppression
from api_service.streams import service as streams
from api_service.suppressions import repository
from api_service.webhooks import service as webhooks
from api_service.webhooks.payloads import subscription_change_payload
from shared.constants import ErrorCode, SuppressionOrigin, SuppressionReason, WebhookTrigger
from shared.schemas.suppressions import SuppressionChange, SuppressionResult

MAX_ITEMS = 50
INVALID = "An invalid email address was provided."
NO_AUTHORITY = (
    "This address is suppressed because of a spam complaint. To lift it after checking with the recipient, "
    'send it again with "LiftSpamComplaint": true.'
)


@dataclass(frozen=True, slots=True)
class MessageContext:
    """The message that caused a change, as the SubscriptionChange payload reports it."""

    message_id: uuid.UUID | None = None
    tag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Lifted(Enum):
    LIFTED = "lifted"
    NOT_SUPPRESSED = "not suppressed"
    NOT_ALLOWED = "not allowed"


async def _notify(
    *,
    session: AsyncSession,
    server: Server,
    stream: str,
    email: str,
    suppress: bool,
    reason: SuppressionReason | None,
    origin: SuppressionOrigin,
    context: MessageContext,
    at: datetime,
) -> None:
    payload = subscription_change_payload(
        server_id=server.id,
        stream=stream,
        message_id=str(context.message_id) if context.message_id else None,
        recipient=email,
        changed_at=at,
        origin=origin,
        suppress=suppress,
        reason=reason,
        tag=context.tag,
        metadata=context.metadata,
    )
    await webhooks.event_recorded(
        session=session, server=server, stream=stream, trigger=WebhookTrigger.SUBSCRIPTION_CHANGE, payload=payload
    )


async def suppress(
    *,
    session: AsyncSession,
    server: Server,
    stream: str,
    email: str,
    reason: SuppressionReason,
    origin: SuppressionOrigin,
    context: MessageContext | None = None,
) -> bool:
    """Suppress the address on the stream; False when it already was (nothing changes then)."""
    added = await repository.add(session=session, server_id=server.id, stream=stream, email=email, reason=reason, origin=origin)
    if added:
        await _notify(
            session=session,
            server=server,
            stream=stream,
            email=email,
            suppress=True,
            reason=reason,
            origin=origin,
            context=context or MessageContext(),
            at=datetime.now(UTC),
        )
    return added


async def lift(
    *, session: AsyncSession, server: Server, stream: str, email: str, origin: SuppressionOrigin, lift_complaint: bool = False
) -> Lifted:
    """Reactivate the address on the stream. A spam complaint is lifted only when asked for in so
    many words (`lift_complaint`), or by an admin: never irreversible, never by accident."""
    existing = await repository.get(session=session, server_id=server.id, stream=stream, email=email)
    if existing is None:
        return Lifted.NOT_SUPPRESSED
    if existing.reason == SuppressionReason.SPAM_COMPLAINT and origin is not SuppressionOrigin.ADMIN and not lift_complaint:
        return Lifted.NOT_ALLOWED
    await repository.remove(session=session, server_id=server.id, stream=stream, email=email)
    await _notify(
        session=session,
        server=server,
        stream=stream,
        email=email,
        suppress=False,
        reason=None,
        origin=origin,
        context=MessageContext(),
        at=datetime.now(UTC),
    )
    return Lifted.LIFTED


# --- the /message-streams/{stream}/suppressions API ----------------------------------------


async def check_stream(*, session: AsyncSession, server: Server, stream: str) -> str:
    stream = stream.lower()
    if await streams.get_stream(session=session, server_id=server.id, stream_id=stream) is None:
        raise NotFound(ErrorCode.STREAM_NOT_FOUND_BY_ID, f"The message stream '{stream}' was not found.")
    return stream


def addresses(data: SuppressionChange) -> list[str]:
    if not data.Suppressions:
        raise PostmarkError(ErrorCode.SUPPRESSION_NO_BODY, "The request has no Suppressions.")
    if len(data.Suppressions) > MAX_ITEMS:
        raise PostmarkError(ErrorCode.SUPPRESSION_TOO_MANY, f"At most {MAX_ITEMS} suppressions can be changed in one request.")
    return [(item.EmailAddress or "").strip() for item in data.Suppressions]


def _valid(raw: str) -> str | SuppressionResult:
    """The normalised address, or the per-item failure Postmark answers for an invalid one."""
    email = normalise_email(raw)
    return email if email is not None else SuppressionResult(EmailAddress=raw, Status="Failed", Message=INVALID)


async def suppress_many(*, session: AsyncSession, server: Server, stream: str, data: SuppressionChange) -> list[SuppressionResult]:
    results = []
    for raw in addresses(data):
        email = _valid(raw)
        if isinstance(email, SuppressionResult):
            results.append(email)
            continue
        await suppress(
            session=session,
            server=server,
            stream=stream,
            email=email,
            reason=SuppressionReason.MANUAL_SUPPRESSION,
            origin=SuppressionOrigin.CUSTOMER,
        )
        results.append(SuppressionResult(EmailAddress=email, Status="Suppressed", Message=None))
    return results


async def lift_many(*, session: AsyncSession, server: Server, stream: str, data: SuppressionChange) -> list[SuppressionResult]:
    results = []
    addresses(data)  # the count and presence checks
    for item in data.Suppressions or []:
        email = _valid((item.EmailAddress or "").strip())
        if isinstance(email, SuppressionResult):
            results.append(email)
            continue
        lifted = await lift(
            session=session,
            server=server,
            stream=stream,
            email=email,
            origin=SuppressionOrigin.CUSTOMER,
            lift_complaint=item.LiftSpamComplaint is True,
        )
        if lifted is Lifted.NOT_ALLOWED:
            results.append(SuppressionResult(EmailAddress=email, Status="Failed", Message=NO_AUTHORITY))
        else:
            results.append(SuppressionResult(EmailAddress=email, Status="Deleted", Message=None))
    return results


async def dump(
    *,
    session: AsyncSession,
    server_id: int,
    stream: str,
    reason: str | None,
    origin: str | None,
    email: str | None,
    from_date: datetime | None,
    to_date: datetime | None,
) -> list[Suppression]:
    return await repository.dump(
        session=session, server_id=server_id, stream=stream, reason=reason, origin=origin, email=email, from_date=from_date, to_date=to_date
    )


async def forget(*, session: AsyncSession, email: str) -> int:
    """A data removal: the address leaves every suppression list, so mail to it is no longer
    refused. No SubscriptionChange webhook is sent: it would carry the address being erased."""
    return await repository.delete_for_email(session=session, email=email)
