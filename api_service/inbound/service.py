"""Inbound mail: which addresses are received, storing what arrives, blocking by rule or spam score,
and POSTing it to the server's InboundHookUrl through the webhook outbox.

A message is stored once per SMTP transaction and server it was received for, however many of that
server's addresses it was sent to (plus addresses of its inbound hash, addresses at its
InboundDomain): one row with the raw MIME, one POST, as Postmark posts it. The first of those
envelope recipients is its OriginalRecipient and MailboxHash; the others are in its To, Cc or Bcc
(each with its own MailboxHash) and in `recipients`, so the recipient search and data removal find
them. It has the status Postmark shows: Blocked (a rule or the spam threshold), Queued (its POST is in the
outbox), Scheduled (an attempt failed, another is due), Processed (the hook answered 2xx, or the
server has no InboundHookUrl), Failed (the retries ran out, or the hook answered 403; an InboundError
bounce records it). Bypass posts a Blocked message anyway; retry posts a Failed one again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import service as bounces_service
from api_service.config import Settings
from api_service.core.paging import Page
from api_service.dmarc import service as dmarc_service
from api_service.errors import InvalidEmailRequest, NotFound, PostmarkError
from api_service.inbound import repository
from api_service.inbound.parsing import for_recipients, parse_for_recipients, parse_inbound, spam_score, split_mailbox_hash
from api_service.inbound.repository import InboundFilter as InboundFilter  # callers filter without the repository
from api_service.inbound.rules import blocked_reason, normalise_rule
from api_service.inbound.text import clean
from api_service.models import InboundMessage, InboundRule, Server, WebhookDeliveryStatus
from api_service.webhooks import service as webhooks_service
from api_service.webhooks.tasks import DeliveryOutcome
from shared.constants import INBOUND_MESSAGE_STREAM, BounceType, ErrorCode, InboundStatus
from shared.schemas.inbound import InboundMessage as InboundPayload
from shared.schemas.inbound import InboundRuleCreate
from shared.schemas.inbound_smtp import InboundDelivery

# The outbox record type of inbound POSTs; the worker hands their outcomes to `record_hook_outcome`.
INBOUND_RECORD_TYPE = "Inbound"
ACTIVE = frozenset({InboundStatus.QUEUED, InboundStatus.SCHEDULED})


# --- which addresses are received -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientVerdict:
    """The server that receives mail at an address (None: nobody), and whether its domain is an
    inbound domain at all."""

    server: Server | None
    domain_accepted: bool
    report: bool = False  # a DMARC or TLS report address: Postgate reads the mail itself


async def resolve_recipient(*, session: AsyncSession, settings: Settings, address: str) -> RecipientVerdict:
    """`<InboundHash>[+MailboxHash]@INBOUND_DOMAIN`, or any address at a server's InboundDomain; or a
    report address (DMARC_REPORT_ADDRESS, TLS_REPORT_ADDRESS, a domain's rua)."""
    local, at, domain = address.strip().rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not local or not domain:
        return RecipientVerdict(server=None, domain_accepted=False)
    if await dmarc_service.is_report_address(session=session, settings=settings, address=address):
        return RecipientVerdict(server=None, domain_accepted=True, report=True)
    if domain == settings.inbound_domain.lower():
        inbound_hash = split_mailbox_hash(f"{local}@{domain}")[0].rpartition("@")[0]
        server = await repository.server_by_inbound_hash(session=session, inbound_hash=inbound_hash)
        return RecipientVerdict(server=server, domain_accepted=True)
    server = await repository.server_by_inbound_domain(session=session, domain=domain)
    return RecipientVerdict(server=server, domain_accepted=server is not None)


# --- receiving ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    messages: list[InboundMessage]
    reports: list[str]  # ids of the DMARC and TLS reports stored (see dmarc.service.receive)

    @property
    def ids(self) -> list[str]:
        return [str(m.id) for m in self.messages] + self.reports


async def receive(*, session: AsyncSession, settings: Settings, delivery: InboundDelivery) -> Received:
    """Store a received message once for each server that receives at one of its recipients, and
    queue its POST; a recipient nobody receives at (any more) is skipped. Mail to a report address
    is read as DMARC or TLS reports, at once. Raises when no recipient is left."""
    try:
        raw = base64.b64decode(delivery.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None
    report_rcpts = [r for r in delivery.RcptTo if await dmarc_service.is_report_address(session=session, settings=settings, address=r)]
    others = [r for r in delivery.RcptTo if r not in report_rcpts]
    reports: list[str] = []
    if report_rcpts:
        try:
            reports = await dmarc_service.receive(session=session, settings=settings, raw=raw)
        except InvalidEmailRequest:
            if not others:  # only a report address: refused (550); otherwise the other recipients still get it
                raise
    targets = await _recipients_by_server(session=session, settings=settings, rcpt_to=others)
    if not targets:
        if reports:
            return Received(messages=[], reports=reports)
        raise InvalidEmailRequest("No recipient of this message is an inbound address.")
    # Parsed once (a second or so for 10 MB of hostile MIME, so not on the event loop), then
    # addressed to each server's recipients.
    include_raw = any(server.raw_email_enabled for server, _ in targets)
    parsed = await asyncio.to_thread(parse_for_recipients, raw, message_stream=INBOUND_MESSAGE_STREAM, include_raw=include_raw)
    messages = [
        await _store(
            session=session, settings=settings, server=server, recipients=recipients, mail_from=delivery.MailFrom, raw=raw, parsed=parsed
        )
        for server, recipients in targets
    ]
    return Received(messages=messages, reports=reports)


async def _recipients_by_server(*, session: AsyncSession, settings: Settings, rcpt_to: list[str]) -> list[tuple[Server, list[str]]]:
    """The envelope recipients each server receives at, in envelope order (each address once)."""
    targets: dict[int, tuple[Server, list[str]]] = {}
    seen: set[str] = set()
    for recipient in rcpt_to:
        if recipient.lower() in seen:
            continue
        seen.add(recipient.lower())
        server = (await resolve_recipient(session=session, settings=settings, address=recipient)).server
        if server is not None:
            targets.setdefault(server.id, (server, []))[1].append(recipient)
    return list(targets.values())


async def _store(
    *,
    session: AsyncSession,
    settings: Settings,
    server: Server,
    recipients: list[str],
    mail_from: str,
    raw: bytes,
    parsed: InboundPayload,
) -> InboundMessage:
    message_id = uuid.uuid4()
    payload = for_recipients(parsed, recipients=recipients, message_id=str(message_id))
    if not server.raw_email_enabled:
        payload = payload.model_copy(update={"RawEmail": None})
    envelope_from = clean(mail_from).strip()
    score = spam_score(payload.Headers)
    reason = blocked_reason(
        rules=await repository.rule_texts(session=session, server_id=server.id),
        senders=[payload.From, envelope_from],
        score=score,
        threshold=server.inbound_spam_threshold,
    )
    status = InboundStatus.BLOCKED if reason else InboundStatus.QUEUED if server.inbound_hook_url else InboundStatus.PROCESSED
    # Every envelope recipient is in To, Cc or Bcc (for_recipients adds the unnamed ones to Bcc).
    addresses = [a.Email for a in (*payload.ToFull, *payload.CcFull, *payload.BccFull)]
    message = InboundMessage(
        id=message_id,
        server_id=server.id,
        message_stream=payload.MessageStream,
        status=status,
        blocked_reason=reason,
        envelope_from=envelope_from,
        original_recipient=payload.OriginalRecipient,
        from_email=payload.From,
        recipients=sorted({a.lower() for a in [*addresses, payload.OriginalRecipient] if a}),
        subject=payload.Subject,
        mailbox_hash=payload.MailboxHash,
        tag=payload.Tag,
        spam_score=score,
        details=_details(payload),
        raw_mime=raw,
    )
    await repository.add_message(session=session, message=message)
    if status is InboundStatus.QUEUED:
        await _post(session=session, settings=settings, server=server, message=message, payload=payload)
    return message


def _details(payload: InboundPayload) -> dict[str, Any]:
    """The payload as the Messages API shows it: no attachment content, no raw email."""
    details = payload.model_dump(exclude_none=True, exclude={"RawEmail"})
    for attachment in details["Attachments"]:
        attachment.pop("Content", None)
    return details


def retry_schedule(settings: Settings) -> list[float]:
    return [float(v) for v in settings.inbound_hook_retry_schedule.split(",") if v.strip()]


async def _post(*, session: AsyncSession, settings: Settings, server: Server, message: InboundMessage, payload: InboundPayload) -> None:
    await webhooks_service.enqueue_post(
        session=session,
        server_id=server.id,
        record_type=INBOUND_RECORD_TYPE,
        url=server.inbound_hook_url,
        payload=payload,
        retry_schedule=retry_schedule(settings),
        origin_id=str(message.id),
    )


async def _post_again(
    *, session: AsyncSession, settings: Settings, server: Server, message: InboundMessage, allowed: InboundStatus
) -> bool:
    """Post a stored message (bypass or retry) if it is still `allowed`; False when it is not."""
    target = InboundStatus.QUEUED if server.inbound_hook_url else InboundStatus.PROCESSED
    if not await repository.change_status(session=session, message_id=message.id, from_statuses={allowed}, to=target):
        return False
    if target is InboundStatus.QUEUED:
        # The transaction's other recipients at this server are in Bcc unless To or Cc names them;
        # for_recipients adds each to Bcc again, in the same order, and skips the rest.
        others = [str(a.get("Email", "")) for a in message.details.get("BccFull", [])]
        payload = await asyncio.to_thread(
            parse_inbound,
            message.raw_mime,
            original_recipient=message.original_recipient,
            other_recipients=others,
            message_stream=message.message_stream,
            include_raw=server.raw_email_enabled,
            message_id=str(message.id),
        )
        await _post(session=session, settings=settings, server=server, message=message, payload=payload)
    return True


# --- the Messages API ---------------------------------------------------------------------------------


def parse_message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Inbound message {value} was not found.") from None


async def forget_address(*, session: AsyncSession, email: str, limit: int) -> int:
    """Data removal: delete up to `limit` inbound messages sent from or to `email`; how many went."""
    return await repository.delete_messages_about(session=session, email=email.lower(), limit=limit)


async def get_message_or_raise(*, session: AsyncSession, server_id: int, message_id: str) -> InboundMessage:
    message = await repository.get_message(session=session, server_id=server_id, message_id=parse_message_id(message_id))
    if message is None:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Inbound message {message_id} was not found.")
    return message


async def list_messages(
    *, session: AsyncSession, server_id: int, filters: repository.InboundFilter, page: Page
) -> tuple[int, list[InboundMessage]]:
    return await repository.list_messages(session=session, server_id=server_id, filters=filters, count=page.count, offset=page.offset)


async def bypass(*, session: AsyncSession, settings: Settings, server: Server, message_id: str) -> InboundMessage:
    """Post a Blocked message to the hook as if no rule had matched."""
    message = await get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    if not await _post_again(session=session, settings=settings, server=server, message=message, allowed=InboundStatus.BLOCKED):
        raise PostmarkError(
            ErrorCode.INBOUND_CANNOT_BYPASS,
            f"Inbound message {message_id} is {message.status}, not Blocked: only blocked messages can bypass the rules.",
        )
    return message


async def retry(*, session: AsyncSession, settings: Settings, server: Server, message_id: str) -> InboundMessage:
    """Post a Failed message to the hook again, with a new round of retries."""
    message = await get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    if not await _post_again(session=session, settings=settings, server=server, message=message, allowed=InboundStatus.FAILED):
        raise PostmarkError(
            ErrorCode.INBOUND_CANNOT_RETRY,
            f"Inbound message {message_id} is {message.status}, not Failed: only failed messages can be retried.",
        )
    return message


# --- the hook's answers (called by the worker, in the transaction that records the attempt) ----------


async def record_hook_outcome(*, session: AsyncSession, outcome: DeliveryOutcome) -> None:
    """Processed on a 2xx, Scheduled while retries remain; Failed with an InboundError bounce when
    they ran out or the hook answered 403."""
    try:
        message_id = uuid.UUID(outcome.origin_id)
    except ValueError:
        return
    if outcome.status is WebhookDeliveryStatus.DELIVERED:
        await repository.change_status(session=session, message_id=message_id, from_statuses=set(ACTIVE), to=InboundStatus.PROCESSED)
    elif outcome.status is WebhookDeliveryStatus.PENDING:
        await repository.change_status(session=session, message_id=message_id, from_statuses=set(ACTIVE), to=InboundStatus.SCHEDULED)
    elif await repository.change_status(session=session, message_id=message_id, from_statuses=set(ACTIVE), to=InboundStatus.FAILED):
        message = await repository.get_message(session=session, message_id=message_id)
        if message is not None:
            await _record_failure(session=session, message=message, outcome=outcome)


async def _record_failure(*, session: AsyncSession, message: InboundMessage, outcome: DeliveryOutcome) -> None:
    answer = f"answered HTTP {outcome.http_status}" if outcome.http_status is not None else f"could not be reached ({outcome.error})"
    why = " (403: no more attempts)" if outcome.http_status == 403 else f" on attempt {outcome.attempts}, the last"
    # Bounces reference outbound messages only, so the inbound message's id is in Details.
    await bounces_service.record_bounce(
        session=session,
        server_id=message.server_id,
        bounce_type=BounceType.INBOUND_ERROR,
        email=message.original_recipient[:320],
        details=f"Inbound message {message.id}: the InboundHookUrl {answer}{why}."[:2000],
        message_stream=message.message_stream,
        from_email=message.from_email[:255],
        subject=message.subject,
        dump=message.raw_mime,
    )


# --- inbound rules ------------------------------------------------------------------------------------


async def list_rules(*, session: AsyncSession, server_id: int, page: Page) -> tuple[int, list[InboundRule]]:
    return await repository.list_rules(session=session, server_id=server_id, count=page.count, offset=page.offset)


async def create_rule(*, session: AsyncSession, server_id: int, data: InboundRuleCreate) -> InboundRule:
    if not data.Rule or not data.Rule.strip():
        raise PostmarkError(ErrorCode.TRIGGER_NO_DATA, "The Rule is required: an email address or a domain.")
    rule = normalise_rule(data.Rule)
    if rule is None:
        raise PostmarkError(ErrorCode.INBOUND_RULE_INVALID, f"'{data.Rule}' is not a valid email address or domain.")
    created = await repository.add_rule(session=session, server_id=server_id, rule=rule)
    if created is None:
        raise PostmarkError(ErrorCode.INBOUND_RULE_EXISTS, f"The inbound rule '{rule}' already exists.")
    return created


async def delete_rule(*, session: AsyncSession, server_id: int, rule_id: int) -> str:
    """Delete a rule; its text, for the answer."""
    rule = await repository.get_rule(session=session, server_id=server_id, rule_id=rule_id)
    if rule is None:
        raise NotFound(ErrorCode.INBOUND_RULE_NOT_FOUND, f"Inbound rule {rule_id} was not found.")
    await repository.delete_rule(session=session, rule=rule)
    return rule.rule


async def purge_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Retention: one batch of the server's inbound messages older than `days` whose hook is done."""
    return await repository.delete_expired(session=session, server_id=server_id, days=days, limit=limit)
