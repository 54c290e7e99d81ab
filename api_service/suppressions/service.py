"""Suppression rules: the customer may add any address and remove any but a spam complaint."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.email.addresses import normalise_email
from api_service.errors import NotFound, PostmarkError
from api_service.models import Server
from api_service.servers import repository as servers_repository
from api_service.suppressions import repository
from api_service.webhooks import service as webhooks
from api_service.webhooks.payloads import subscription_change_payload
from shared.constants import SuppressionOrigin, SuppressionReason
from shared.schemas.suppressions import SuppressionChange, SuppressionResult

MAX_ITEMS = 50
INVALID = "An invalid email address was provided."
NO_AUTHORITY = "You do not have the required authority to change this suppression."


async def check_stream(*, session: AsyncSession, server: Server, stream: str) -> str:
    stream = stream.lower()
    if await servers_repository.get_stream(session=session, server_id=server.id, stream_id=stream) is None:
        raise NotFound(1226, f"The message stream '{stream}' was not found.")
    return stream


def addresses(data: SuppressionChange) -> list[str]:
    if not data.Suppressions:
        raise PostmarkError(1409, "The request has no Suppressions.")
    if len(data.Suppressions) > MAX_ITEMS:
        raise PostmarkError(1410, f"At most {MAX_ITEMS} suppressions can be changed in one request.")
    return [(item.EmailAddress or "").strip() for item in data.Suppressions]


async def _notify(*, session: AsyncSession, server: Server, stream: str, email: str, suppress: bool, reason: str | None) -> None:
    payload = subscription_change_payload(
        server_id=server.id,
        stream=stream,
        message_id=None,
        recipient=email,
        changed_at=datetime.now(UTC),
        origin=SuppressionOrigin.CUSTOMER.value,
        suppress=suppress,
        reason=reason,
        tag="",
        metadata={},
    )
    await webhooks.event_recorded(session=session, server=server, stream=stream, trigger="SubscriptionChange", payload=payload)


def _valid(raw: str) -> str | SuppressionResult:
    """The normalised address, or the per-item failure Postmark answers for an invalid one."""
    email = normalise_email(raw)
    return email if email is not None else SuppressionResult(EmailAddress=raw, Status="Failed", Message=INVALID)


async def suppress(*, session: AsyncSession, server: Server, stream: str, data: SuppressionChange) -> list[SuppressionResult]:
    results = []
    for raw in addresses(data):
        email = _valid(raw)
        if isinstance(email, SuppressionResult):
            results.append(email)
            continue
        reason = SuppressionReason.MANUAL_SUPPRESSION.value
        if await repository.add(
            session=session, server_id=server.id, stream=stream, email=email, reason=reason, origin=SuppressionOrigin.CUSTOMER.value
        ):
            await _notify(session=session, server=server, stream=stream, email=email, suppress=True, reason=reason)
        results.append(SuppressionResult(EmailAddress=email, Status="Suppressed", Message=None))
    return results


async def reactivate(*, session: AsyncSession, server: Server, stream: str, data: SuppressionChange) -> list[SuppressionResult]:
    results = []
    for raw in addresses(data):
        email = _valid(raw)
        if isinstance(email, SuppressionResult):
            results.append(email)
            continue
        existing = await repository.get(session=session, server_id=server.id, stream=stream, email=email)
        if existing is not None and existing.reason == SuppressionReason.SPAM_COMPLAINT.value:
            results.append(SuppressionResult(EmailAddress=email, Status="Failed", Message=NO_AUTHORITY))
            continue
        if existing is not None:
            await repository.remove(session=session, server_id=server.id, stream=stream, email=email)
            await _notify(session=session, server=server, stream=stream, email=email, suppress=False, reason=None)
        results.append(SuppressionResult(EmailAddress=email, Status="Deleted", Message=None))
    return results
