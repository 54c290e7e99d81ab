"""Data removal: everything Postgate holds about one address is deleted or anonymised by the worker,
a bounded batch per table per round, each through the package that owns the table.

- Messages to the address: deleted, with their events and queue rows, when it is their only
  recipient; otherwise the address becomes `PLACEHOLDER` in the recipient lists, the raw MIME
  (headers with the display name; text parts), the subject and the metadata, and its own queue
  row and events are deleted. A message being delivered right now waits for the next round.
- Opens and clicks of the address (with its IP and User-Agent) on an anonymised message: deleted
  (on a deleted message they go with it); tracking records none for it afterwards.
- Bounces of the address, with their dumps: deleted. Bounces of other recipients of an anonymised
  message: the address becomes `PLACEHOLDER` in their dumps and details.
- Suppressions of the address, on every server and stream: deleted (mail to it is no longer
  refused; no SubscriptionChange webhook names it).
- Webhook events (sent or waiting) whose payload names it: deleted.
- Stored `Idempotency-Key` responses naming it: the address becomes `PLACEHOLDER`.
- Inbound messages from or to the address (envelope, From, To, Cc, Bcc or the inbound address): deleted
  with their raw MIME.
- The request itself keeps only the SHA-256 of the address once done.

Not touched: messages sent *from* the address, and sender signatures (the account's own settings).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import service as bounces
from api_service.config import Settings
from api_service.data_removals import repository
from api_service.email import service as email
from api_service.errors import NotFound, PostmarkError
from api_service.inbound import service as inbound
from api_service.mail.addresses import Mailbox, normalise_email
from api_service.messages import service as messages
from api_service.models import DataRemoval
from api_service.senders import system_mail
from api_service.suppressions import service as suppressions
from api_service.tracking import service as tracking
from api_service.webhooks import service as webhooks
from shared.constants import DataRemovalStatus, ErrorCode
from shared.schemas.data_removals import DataRemovalRequest

log = logging.getLogger("postgate.data_removals")

PLACEHOLDER = "removed@data-removal.invalid"  # RFC 2606: .invalid never resolves
# A message to the address that a worker is delivering is left alone; the removal comes back after this.
BUSY_RETRY = timedelta(seconds=30)
COUNT_NAMES = (
    "MessagesDeleted",
    "MessagesAnonymised",
    "BouncesDeleted",
    "BouncesAnonymised",
    "OpensAndClicksDeleted",
    "SuppressionsDeleted",
    "WebhookEventsDeleted",
    "IdempotencyResponsesAnonymised",
    "InboundMessagesDeleted",
)


def _address(value: str | None, field: str) -> str:
    email_address = normalise_email((value or "").strip())
    if email_address is None:
        raise PostmarkError(ErrorCode.DATA_REMOVAL_INVALID, f"{field} must be a valid email address.")
    return email_address


async def request_removal(*, session: AsyncSession, data: DataRemovalRequest) -> DataRemoval:
    """Record the request; the worker carries it out."""
    requested_for = _address(data.RequestedFor, "RequestedFor").lower()
    removal = DataRemoval(
        requested_by=_address(data.RequestedBy, "RequestedBy"),
        requested_for=requested_for,
        requested_for_sha256=hashlib.sha256(requested_for.encode()).hexdigest(),
        notify_when_completed=data.NotifyWhenCompleted,
        status=DataRemovalStatus.PENDING,
        counts=dict.fromkeys(COUNT_NAMES, 0),
    )
    return await repository.add(session=session, removal=removal)


async def get_removal_or_raise(*, session: AsyncSession, removal_id: int) -> DataRemoval:
    removal = await repository.get(session=session, removal_id=removal_id)
    if removal is None:
        raise NotFound(ErrorCode.DATA_REMOVAL_NOT_FOUND, f"Data removal request {removal_id} was not found.")
    return removal


@dataclass(frozen=True, slots=True)
class Round:
    changed: int
    more: bool
    busy: int


async def _round(*, session: AsyncSession, address: str, batch: int, counts: dict[str, int]) -> Round:
    forgotten = await messages.forget_recipient(session=session, email=address, placeholder=PLACEHOLDER, limit=batch)
    anonymised_bounces = await bounces.scrub_other_bounces(
        session=session, message_ids=forgotten.scrubbed, email=address, placeholder=PLACEHOLDER
    )
    deleted_activity = await tracking.forget_recipient(session=session, message_ids=forgotten.scrubbed, email=address)
    deleted_bounces = await bounces.delete_for_email(session=session, email=address, limit=batch)
    deleted_suppressions = await suppressions.forget(session=session, email=address)
    deleted_hooks = await webhooks.forget_address(session=session, email=address, limit=batch)
    anonymised_responses = await email.forget_address(session=session, email=address, placeholder=PLACEHOLDER, limit=batch)
    deleted_inbound = await inbound.forget_address(session=session, email=address, limit=batch)
    done = {
        "MessagesDeleted": forgotten.deleted,
        "MessagesAnonymised": len(forgotten.scrubbed),
        "BouncesDeleted": deleted_bounces,
        "BouncesAnonymised": anonymised_bounces,
        "OpensAndClicksDeleted": deleted_activity,
        "SuppressionsDeleted": deleted_suppressions,
        "WebhookEventsDeleted": deleted_hooks,
        "IdempotencyResponsesAnonymised": anonymised_responses,
        "InboundMessagesDeleted": deleted_inbound,
    }
    for name, value in done.items():
        counts[name] = counts.get(name, 0) + value
    more = (
        forgotten.deleted + len(forgotten.scrubbed) >= batch
        or max(deleted_bounces, deleted_hooks, anonymised_responses, deleted_inbound) >= batch
    )
    return Round(changed=sum(done.values()), more=more, busy=forgotten.busy)


async def work_on(*, session: AsyncSession, removal: DataRemoval, settings: Settings) -> bool:
    """One bounded round of a pending removal, in the caller's transaction; completes it when
    nothing is left. Returns whether anything changed."""
    counts = dict(removal.counts)
    done = await _round(session=session, address=removal.requested_for, batch=settings.data_removal_batch_size, counts=counts)
    removal.counts = counts
    if done.more:
        return True
    if done.busy:
        removal.next_step_at = datetime.now(UTC) + BUSY_RETRY
        return done.changed > 0
    await _complete(session=session, removal=removal, settings=settings)
    return True


async def _complete(*, session: AsyncSession, removal: DataRemoval, settings: Settings) -> None:
    removal.status, removal.completed_at, removal.requested_for = DataRemovalStatus.DONE, datetime.now(UTC), ""
    await session.flush()
    if not removal.notify_when_completed:
        return
    mail = system_mail.SystemMail(
        to=Mailbox(name="", email=removal.requested_by),
        subject=f"Data removal request {removal.id} is done",
        text=(
            f"The data removal request {removal.id} is done: every message, bounce, suppression and webhook event about "
            "the address it named has been deleted or anonymised.\n"
        ),
        html=(
            f"<p>The data removal request {removal.id} is done: every message, bounce, suppression and webhook event about "
            "the address it named has been deleted or anonymised.</p>"
        ),
        tag="data-removal",
    )
    try:
        async with session.begin_nested():
            await system_mail.send(session=session, settings=settings, mail=mail)
    except PostmarkError as exc:  # the removal is done all the same; only the notice is lost
        log.warning("could not mail the completion of data removal %s to its requester: %s", removal.id, exc.message)
