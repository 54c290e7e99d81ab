"""Bounces: the one place they are recorded (delivery failures, DSNs and complaints mailed back,
SMTP API errors), so that suppression and webhooks follow the same rules whatever found them."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import repository
from api_service.bounces.classify import Outcome, classify
from api_service.bounces.reports import FailedRecipient, complaint_from_authority, parse_report
from api_service.bounces.reports import Report as ParsedReport
from api_service.bounces.repository import BounceFilter as BounceFilter  # callers filter without the repository
from api_service.bounces.repository import BounceRow as BounceRow
from api_service.bounces.verp import parse_return_path, returns_to
from api_service.core.offload import cpu_bound
from api_service.errors import InvalidEmailRequest, NotFound, PostmarkError
from api_service.mail.addresses import normalise_email
from api_service.messages import service as messages
from api_service.messages.scrub import scrub_address, scrub_text
from api_service.models import Bounce, Message
from api_service.servers import repository as servers_repository
from api_service.streams import service as streams
from api_service.suppressions import service as suppressions
from api_service.tracking import service as tracking
from api_service.webhooks import service as webhooks_service
from shared.constants import BOUNCE_TYPES, DEFAULT_MESSAGE_STREAM, BounceType, ErrorCode, SuppressionOrigin, SuppressionReason
from shared.schemas.bounce_reports import BounceReport
from shared.schemas.webhook_payloads import StreamPausedWebhook

log = logging.getLogger("postgate.bounces")


async def get_bounce_or_raise(*, session: AsyncSession, server_id: int, bounce_id: int) -> repository.BounceRow:
    row = await repository.get_bounce(session=session, server_id=server_id, bounce_id=bounce_id)
    if row is None:
        raise NotFound(ErrorCode.BOUNCE_NOT_FOUND, f"Bounce {bounce_id} was not found.")
    return row


async def activate(*, session: AsyncSession, server_id: int, bounce_id: int) -> repository.BounceRow:
    """Reactivate the bounced recipient on the bounce's stream (lifts its suppression)."""
    row = await get_bounce_or_raise(session=session, server_id=server_id, bounce_id=bounce_id)
    bounce = row.bounce
    if not bounce.can_activate:
        raise PostmarkError(ErrorCode.BOUNCE_CANNOT_ACTIVATE, f"Bounces of type {bounce.type} cannot be activated.")
    server = await servers_repository.get_server(session=session, server_id=server_id)
    if server is None:
        raise NotFound(ErrorCode.BOUNCE_NOT_FOUND, f"Bounce {bounce_id} was not found.")
    lifted = await suppressions.lift(
        session=session, server=server, stream=bounce.message_stream, email=bounce.email, origin=SuppressionOrigin.CUSTOMER
    )
    if lifted is suppressions.Lifted.NOT_ALLOWED:
        raise PostmarkError(
            ErrorCode.BOUNCE_CANNOT_ACTIVATE,
            f"{bounce.email} is suppressed because of a spam complaint. To lift it after checking with the recipient, POST "
            f'/message-streams/{bounce.message_stream}/suppressions/delete with "LiftSpamComplaint": true on the address.',
        )
    return repository.BounceRow(bounce=bounce, dump_available=row.dump_available, suppressed=False)


async def delivery_stats(*, session: AsyncSession, server_id: int) -> tuple[int, list[tuple[BounceType, int]]]:
    counts = dict(await repository.count_by_type(session=session, server_id=server_id))
    rows = [(t, counts[t]) for t in BOUNCE_TYPES if counts.get(t)]
    return await repository.count_inactive(session=session, server_id=server_id), rows


@dataclass(eq=False, slots=True)
class Dump:
    """The raw source of one or more bounces; stored the first time a bounce uses it, then shared
    (a message refused for 500 recipients is kept once, not 500 times)."""

    body: bytes
    id: int | None = None


async def record_bounce(
    *,
    session: AsyncSession,
    server_id: int,
    bounce_type: BounceType,
    email: str,
    details: str,
    message_id: uuid.UUID | None = None,
    message_stream: str = DEFAULT_MESSAGE_STREAM,
    from_email: str = "",
    subject: str = "",
    tag: str = "",
    dump: Dump | bytes | None = None,
    content: str | None = None,
    bounced_at: datetime | None = None,
    metadata: dict[str, str] | None = None,
) -> Bounce:
    """Store a bounce and queue its webhooks; a type that deactivates also suppresses the
    recipient on its stream (which fires SubscriptionChange)."""
    info = BOUNCE_TYPES[bounce_type]
    if isinstance(dump, bytes):
        dump = Dump(dump)
    if dump is not None and dump.id is None:
        dump.id = await repository.add_dump(session=session, server_id=server_id, body=dump.body)
    bounce = Bounce(
        server_id=server_id,
        message_id=message_id,
        message_stream=message_stream,
        type=bounce_type,
        type_code=info.code,
        email=email,
        from_email=from_email,
        subject=subject,
        tag=tag,
        details=details.replace("\x00", ""),
        inactive=info.deactivates,
        can_activate=info.can_activate,
        dump_id=dump.id if dump is not None else None,
        content=content,
        bounced_at=bounced_at or datetime.now(UTC),
    )
    await repository.add_bounce(session=session, bounce=bounce)
    server = await servers_repository.get_server(session=session, server_id=server_id)
    if server is None:
        return bounce
    await webhooks_service.bounce_recorded(
        session=session, server=server, bounce=bounce, metadata=metadata or {}, dump=dump.body if dump is not None else None
    )
    if info.deactivates:
        reason = SuppressionReason.SPAM_COMPLAINT if bounce_type is BounceType.SPAM_COMPLAINT else SuppressionReason.HARD_BOUNCE
        await suppressions.suppress(
            session=session,
            server=server,
            stream=message_stream,
            email=email,
            reason=reason,
            origin=SuppressionOrigin.RECIPIENT,
            context=suppressions.MessageContext(message_id=message_id, tag=tag, metadata=metadata or {}),
        )
    return bounce


async def record_message_bounce(
    *,
    session: AsyncSession,
    message: Message,
    bounce_type: BounceType,
    email: str,
    details: str,
    dump: Dump | bytes | None = None,
    content: str | None = None,
) -> Bounce:
    """A bounce of one recipient of a stored message."""
    return await record_bounce(
        session=session,
        server_id=message.server_id,
        bounce_type=bounce_type,
        email=email,
        details=details,
        message_id=message.id,
        message_stream=message.message_stream,
        from_email=message.from_email,
        subject=message.subject,
        tag=message.tag,
        dump=dump,
        content=content,
        metadata=message.metadata_,
    )


def _null_sender(mail_from: str) -> bool:
    return mail_from.strip().strip("<>").strip() == ""


async def record_report(
    *,
    session: AsyncSession,
    report: BounceReport,
    feedback_loops: list[str],
    keys: list[str],
    legacy_before: datetime | None = None,
    complaint_line: streams.ComplaintLine | None = None,
) -> int:
    """A DSN or complaint mailed to a VERP return path becomes bounces on the message it names; a
    mail to the List-Unsubscribe mailto: address unsubscribes its recipient.

    A DSN counts only when sent with the null sender (RFC 3464 §2, RFC 5321 §4.5.5) and only for a
    recipient of the message whose signed return path it was sent to (`verp.returns_to`, keys
    `keys`). A complaint counts only for the recipient it is about, and only when it comes from that
    recipient's domain or a configured feedback loop (`feedback_loops`)."""
    try:
        raw = base64.b64decode(report.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None
    unsubscribed = await tracking.unsubscribe_by_mail(session=session, rcpt_to=report.RcptTo, raw=raw)
    paths = [path for rcpt in report.RcptTo if (path := parse_return_path(rcpt)) is not None]
    if not paths:
        return unsubscribed
    parsed = await cpu_bound(len(raw), parse_report, raw)
    if parsed.kind != "complaint" and not _null_sender(report.MailFrom):
        log.warning("bounce report from %r ignored: a DSN comes with the null sender", report.MailFrom[:100])
        return unsubscribed
    matched = 0
    for message in (await messages.get_messages(session=session, ids={p.message_id for p in paths})).values():
        dump = Dump(raw)  # once per message however many of its recipients the report names
        if parsed.kind == "complaint":
            matched += await _record_complaint(
                session=session,
                message=message,
                parsed=parsed,
                raw=raw,
                dump=dump,
                mail_from=report.MailFrom,
                feedback_loops=feedback_loops,
                line=complaint_line,
            )
            continue
        own = [p for p in paths if p.message_id == message.id]
        for failed in parsed.failed:
            if failed.email.lower() not in {r.lower() for r in message.recipients} or not any(
                returns_to(p, recipient=failed.email, keys=keys, accepted_at=message.created_at, legacy_before=legacy_before) for p in own
            ):
                log.warning("DSN for %s on %s ignored: not sent to that recipient's return path", failed.email, message.id)
                continue
            matched += await _record_failure(session=session, message=message, failed=failed, dump=dump)
    return matched + unsubscribed


async def _record_complaint(
    *,
    session: AsyncSession,
    message: Message,
    parsed: ParsedReport,
    raw: bytes,
    dump: Dump,
    mail_from: str,
    feedback_loops: list[str],
    line: streams.ComplaintLine | None,
) -> int:
    known = {r.lower() for r in message.recipients}
    email = parsed.complainant or (message.recipients[0] if len(message.recipients) == 1 else None)
    if not email or email.lower() not in known:
        return 0
    senders = [s for s in (parsed.reporter, normalise_email(mail_from) if mail_from else None) if s]
    if not complaint_from_authority(complainant=email, senders=senders, feedback_loops=feedback_loops):
        log.warning("complaint about %s on %s ignored: sent by %s, not its domain or a feedback loop", email, message.id, senders)
        return 0
    await record_message_bounce(
        session=session,
        message=message,
        bounce_type=BounceType.SPAM_COMPLAINT,
        email=email,
        details="Spam complaint (ARF abuse report)",
        dump=dump,
        content=raw.decode("utf-8", "replace"),
    )
    if line is not None:
        await check_complaint_rate(session=session, server_id=message.server_id, stream=message.message_stream, line=line)
    return 1


async def check_complaint_rate(*, session: AsyncSession, server_id: int, stream: str, line: streams.ComplaintLine) -> bool:
    """After a complaint: pause the stream when its complaint rate passed the line (see
    `streams.pause_for_complaints`) and tell its webhooks that take SpamComplaint (RecordType
    StreamPaused); True when it was paused now. Complaints are rare, so the two counts are taken at
    each one rather than kept."""
    since = datetime.now(UTC) - timedelta(days=line.days)
    complaints, sent = await repository.complaint_counts(session=session, server_id=server_id, stream=stream, since=since)
    paused = await streams.pause_for_complaints(
        session=session, server_id=server_id, stream_id=stream, complaints=complaints, sent=sent, line=line
    )
    if paused is None or paused.paused_at is None:
        return False
    payload = StreamPausedWebhook(
        ServerID=server_id,
        MessageStream=stream,
        PausedAt=paused.paused_at,
        Reason=paused.paused_reason,
        SpamComplaints=complaints,
        Recipients=sent,
    )
    await webhooks_service.stream_paused(session=session, server_id=server_id, payload=payload)
    return True


async def _record_failure(*, session: AsyncSession, message: Message, failed: FailedRecipient, dump: Dump) -> int:
    text = failed.diagnostic or f"Status {failed.status}"
    # The DSN's status code decides; 552 for 5.2.x keeps mailbox-full a soft bounce.
    verdict = classify(552 if failed.status.startswith("5.2.") else 550, f"{failed.status} {text}")
    if verdict.outcome is not Outcome.BOUNCE:
        return 0
    await record_message_bounce(
        session=session, message=message, bounce_type=verdict.bounce_type or BounceType.UNKNOWN, email=failed.email, details=text, dump=dump
    )
    await messages.mark_bounced(session=session, message_id=message.id, email=failed.email)
    return 1


async def dump_body(*, session: AsyncSession, row: repository.BounceRow) -> bytes | None:
    """The raw source behind a bounce, when one is kept."""
    if row.bounce.dump is not None:
        return row.bounce.dump
    if row.bounce.dump_id is None:
        return None
    return await repository.get_dump_body(session=session, dump_id=row.bounce.dump_id)


async def list_bounces(
    *, session: AsyncSession, server_id: int, filters: repository.BounceFilter, count: int, offset: int
) -> tuple[int, list[repository.BounceRow]]:
    return await repository.list_bounces(session=session, server_id=server_id, filters=filters, count=count, offset=offset)


async def bounce_tags(*, session: AsyncSession, server_id: int) -> list[str]:
    return await repository.bounce_tags(session=session, server_id=server_id)


# --- data removal --------------------------------------------------------------------------------


async def delete_for_email(*, session: AsyncSession, email: str, limit: int) -> int:
    """Delete up to `limit` bounces of the (lower-cased) address, with their dumps; returns how many."""
    return await repository.delete_for_email(session=session, email=email, limit=limit)


async def scrub_other_bounces(*, session: AsyncSession, message_ids: list[uuid.UUID], email: str, placeholder: str) -> int:
    """In the bounces of other recipients of these messages, the address becomes `placeholder`
    (their dumps hold the message's headers); returns how many changed."""
    changed = 0
    bounces = await repository.bounces_of_messages(session=session, message_ids=message_ids)
    scrubbed_dumps: set[int] = set()
    for dump in await repository.dumps_for_update(session=session, ids={b.dump_id for b in bounces if b.dump_id is not None}):
        body = scrub_address(dump.body, email, placeholder)
        if body != dump.body:
            dump.body = body
            scrubbed_dumps.add(dump.id)
    for bounce in bounces:
        before = (bounce.dump, bounce.content, bounce.details, bounce.subject)
        if bounce.dump is not None:
            bounce.dump = scrub_address(bounce.dump, email, placeholder)
        if bounce.content is not None:
            bounce.content = scrub_text(bounce.content, email, placeholder)
        bounce.details = scrub_text(bounce.details, email, placeholder)
        bounce.subject = scrub_text(bounce.subject, email, placeholder)
        changed += (bounce.dump, bounce.content, bounce.details, bounce.subject) != before or bounce.dump_id in scrubbed_dumps
    await session.flush()
    return changed


async def purge_expired(*, session: AsyncSession, server_id: int, days: int, limit: int) -> int:
    """Retention: one batch of the server's bounces, and one of its raw bounce sources, older than `days`.
    Suppressions are not bounces: as at Postmark, an address stays inactive until it is reactivated."""
    removed = await repository.delete_expired(session=session, server_id=server_id, days=days, limit=limit)
    return removed + await repository.delete_expired_dumps(session=session, server_id=server_id, days=days, limit=limit)
