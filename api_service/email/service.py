"""Intake: every sending rule, idempotency and the stored rows, once, for every entry point.

`accept` takes `OutgoingMessage`s from either adapter and a policy for what is wrong with one:
`Policy.REJECT` (REST: the Postmark ErrorCode goes back to the client, nothing is stored) or
`Policy.BOUNCE` (SMTP: the message was already received, so it is stored and every recipient it
cannot go to gets an `SMTPApiError` bounce, as Postmark does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import service as bounces
from api_service.core import observe
from api_service.email import pipeline, repository
from api_service.email.message import OutgoingMessage
from api_service.errors import (
    ForbiddenAttachment,
    InactiveRecipients,
    InvalidEmailRequest,
    InvalidToken,
    PostmarkError,
    SenderSignatureNotConfirmed,
    SenderSignatureNotFound,
)
from api_service.mail.address_match import postgres_pattern
from api_service.mail.addresses import Mailbox, domain_of
from api_service.messages import service as messages
from api_service.messages.scrub import scrub_json
from api_service.models import Message, MessageRecipient
from shared.constants import (
    DEFAULT_MESSAGE_STREAM,
    FORBIDDEN_ATTACHMENT_EXTENSIONS,
    IDEMPOTENCY_KEY_HEADER,
    MAX_RECIPIENTS_PER_FIELD,
    MAX_SCHEDULE_DAYS,
    BounceType,
    DeliveryType,
    ErrorCode,
    MessageStatus,
    StreamType,
    UnsubscribeHandlingType,
)

# A retried request (same Idempotency-Key, or the same SMTP message to the same recipients) is
# recognised for a day; after that the same key starts a new request.
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
SMTP_ENDPOINT = "smtp"
INVALID_RECIPIENT = "Invalid recipient address."


class Policy(Enum):
    REJECT = "reject"
    BOUNCE = "bounce"


class SendingServer(Protocol):
    """What sending needs of a server: a `models.Server` row or a cached snapshot of one."""

    @property
    def id(self) -> int: ...
    @property
    def track_opens(self) -> bool: ...
    @property
    def track_links(self) -> str: ...
    @property
    def delivery_type(self) -> str: ...


@dataclass(slots=True)
class Accepted:
    """A stored message: who it goes to, and who it does not (inactive, or bounced over SMTP)."""

    message_id: uuid.UUID
    submitted_at: datetime
    queued: int
    inactive: list[str] = field(default_factory=list)
    refused: int = 0
    bulk_domain: str = ""
    """The From domain, when the message went on a Broadcasts stream (the bulk rules' guard rails)."""
    aligned: bool = True
    """Its return path is on the From domain (a verified ReturnPathDomain): SPF aligns for DMARC."""
    send_at: datetime | None = None
    """Set when the message is held until then (scheduled sending)."""


# --- idempotency ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    endpoint: str
    request_sha256: str

    @classmethod
    def from_header(cls, *, key: str | None, endpoint: str, body: bytes) -> Idempotency | None:
        """An `Idempotency-Key` request header: the same key and body replay the first answer."""
        if key is None:
            return None
        key = key.strip()
        if not key or len(key) > 255 or "\x00" in key:
            raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, f"The {IDEMPOTENCY_KEY_HEADER} header must be 1 to 255 characters.")
        return cls(key=key, endpoint=endpoint, request_sha256=hashlib.sha256(body).hexdigest())

    @classmethod
    def for_smtp(cls, *, raw: bytes, recipients: list[str]) -> Idempotency:
        """An SMTP client that lost our 250 sends the same bytes to the same recipients again.

        Only both together mark a retry: the same bytes to other recipients (the rest of a message
        cut at the 50-recipient limit) or another message reusing a Message-ID are new messages.
        """
        digest = hashlib.sha256(raw)
        for recipient in sorted({r.lower() for r in recipients}):
            digest.update(b"\x00" + recipient.encode())
        key = digest.hexdigest()
        return cls(key=key, endpoint=SMTP_ENDPOINT, request_sha256=key)


@dataclass(slots=True)
class Replay:
    """A stored response for a repeated request."""

    status: int
    body: Any


async def begin_idempotent(*, session: AsyncSession, server_id: int, idempotency: Idempotency | None) -> Replay | None:
    """Reserve the key, or return the response it already produced."""
    if idempotency is None:
        return None
    if await repository.reserve_idempotency_key(
        session=session,
        server_id=server_id,
        endpoint=idempotency.endpoint,
        key=idempotency.key,
        request_sha256=idempotency.request_sha256,
        window_seconds=IDEMPOTENCY_WINDOW_SECONDS,
    ):
        return None
    row = await repository.get_idempotency_key(session=session, server_id=server_id, endpoint=idempotency.endpoint, key=idempotency.key)
    if row is None or row.response_status is None:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, "A request with this Idempotency-Key is still being processed; retry later.", 409
        )
    if row.request_sha256 != idempotency.request_sha256:
        raise key_reused()
    return Replay(status=row.response_status, body=row.response_body)


def key_reused() -> PostmarkError:
    return PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "This Idempotency-Key was already used with a different request body.", 422)


async def finish_idempotent(*, session: AsyncSession, server_id: int, idempotency: Idempotency | None, body: Any) -> None:
    if idempotency is not None:
        await repository.store_idempotent_response(
            session=session, server_id=server_id, endpoint=idempotency.endpoint, key=idempotency.key, status=200, body=body
        )


# --- the rules --------------------------------------------------------------------------------


def static_problems(message: OutgoingMessage) -> list[PostmarkError]:
    """The rules that need nothing but the message (also all `POSTMARK_API_TEST` checks)."""
    problems = list(message.problems)
    if message.envelope_recipients is not None and len(message.recipients()) > MAX_RECIPIENTS_PER_FIELD:
        problems.append(
            InvalidEmailRequest(f"Too many recipients ({len(message.recipients())}). The maximum is {MAX_RECIPIENTS_PER_FIELD}.")
        )
    if any(forbidden_extension(name) for name in message.attachment_names):
        problems.append(ForbiddenAttachment())
    if message.send_at is not None and message.send_at > datetime.now(UTC) + timedelta(days=MAX_SCHEDULE_DAYS):
        problems.append(
            InvalidEmailRequest(
                f"'SendAt' ({message.send_at.isoformat()}) is more than {MAX_SCHEDULE_DAYS} days ahead; "
                f"a message may be scheduled at most {MAX_SCHEDULE_DAYS} days in advance."
            )
        )
    return problems


def forbidden_extension(name: str) -> bool:
    """Is the file of a forbidden type? Trailing dots and spaces are dropped first, as Windows
    drops them when it saves the file (`invoice.exe.` is `invoice.exe`)."""
    stem = name.strip().rstrip(". \t")
    return "." in stem and stem.rpartition(".")[2].strip().lower() in FORBIDDEN_ATTACHMENT_EXTENSIONS


def _account_problems(message: OutgoingMessage, lookups: repository.SendLookups) -> list[PostmarkError]:
    """The rules that need the server's streams and the account's signatures and domains."""
    problems: list[PostmarkError] = []
    stream = lookups.streams.get(message.message_stream)
    if stream is None or stream.archived:
        problems.append(
            PostmarkError(
                ErrorCode.STREAM_NOT_FOUND, f"The 'MessageStream' provided does not exist on this server: '{message.message_stream}'."
            )
        )
    elif stream.stream_type == StreamType.INBOUND:
        problems.append(PostmarkError(ErrorCode.STREAM_NOT_SENDABLE, "Sending is not supported on the supplied 'MessageStream'."))
    elif stream.paused_reason is not None:
        problems.append(
            PostmarkError(
                ErrorCode.STREAM_NOT_SENDABLE,
                f"The 'MessageStream' {message.message_stream} is paused: {stream.paused_reason}. "
                f'Resume it with PATCH /message-streams/{message.message_stream} {{"Paused": false}}.',
            )
        )
    if message.sender is not None:
        email = message.sender.email.lower()
        if email not in lookups.reply_tos and domain_of(email) not in lookups.domains:
            unconfirmed = email in lookups.unconfirmed
            problems.append((SenderSignatureNotConfirmed if unconfirmed else SenderSignatureNotFound)(message.sender.email))
    return problems


async def account_problems(*, session: AsyncSession, server_id: int, message: OutgoingMessage) -> list[PostmarkError]:
    """The stream and sender rules for one message, storing nothing: the Bulk API checks its shared part at submit."""
    lookups = await repository.send_lookups(
        session=session,
        server_id=server_id,
        emails={message.sender.email.lower()} if message.sender else set(),
        domains={domain_of(message.sender.email)} if message.sender else set(),
        recipients=set(),
    )
    return _account_problems(message, lookups)


def _wire_list(mailboxes: list[Mailbox]) -> list[dict[str, Any]]:
    return [{"Email": m.email, "Name": m.name} for m in mailboxes]


@dataclass(slots=True)
class _Stored:
    """What one `accept` call writes, in one round trip."""

    messages: list[Message] = field(default_factory=list)
    recipients: list[MessageRecipient] = field(default_factory=list)
    bounces: list[tuple[Message, str, str]] = field(default_factory=list)


async def accept(
    *,
    session: AsyncSession,
    server: SendingServer,
    items: list[OutgoingMessage | PostmarkError],
    policy: Policy,
    message_id_domain: str = "",
) -> list[Accepted | PostmarkError]:
    """Run every sending rule and store what passes; one result per item, in order.

    An item that is already an error (its adapter could not read it) stays one. Nothing here
    commits: the caller's request boundary does, before it answers.
    """
    items = await pipeline.render(session=session, server_id=server.id, items=items)
    good = [i for i in items if isinstance(i, OutgoingMessage)]
    lookups = await repository.send_lookups(
        session=session,
        server_id=server.id,
        emails={m.sender.email.lower() for m in good if m.sender},
        domains={domain_of(m.sender.email) for m in good if m.sender},
        recipients={r.lower() for m in good for r in m.recipients()},
    )
    if not lookups.streams:
        # Every server has its default streams: none means it was deleted after its token was cached.
        raise InvalidToken()

    now = datetime.now(UTC)
    stored = _Stored()
    results: list[Accepted | PostmarkError] = []
    for item in items:
        if isinstance(item, PostmarkError):
            results.append(item)
            continue
        try:
            results.append(
                _accept_one(item, server=server, lookups=lookups, policy=policy, now=now, domain=message_id_domain, stored=stored)
            )
        except PostmarkError as exc:
            results.append(exc)
    queued = [row for row in stored.messages if row.status in (MessageStatus.QUEUED.value, MessageStatus.SCHEDULED.value)]
    counts = await pipeline.tracked_links([(row.raw_mime, row.track_links) for row in queued])
    for row, count in zip(queued, counts, strict=True):
        row.tracked_links = count
    try:
        await messages.store(session=session, messages=stored.messages, recipients=stored.recipients)
    except IntegrityError as exc:
        # The only foreign key is the server's: it was deleted after its token was cached.
        raise InvalidToken() from exc
    dumps: dict[uuid.UUID, bounces.Dump] = {}
    for row, recipient, reason in stored.bounces:
        # The refused message is the dump of each of its bounces, stored once.
        dump = dumps.setdefault(row.id, bounces.Dump(row.raw_mime))
        await bounces.record_bounce(
            session=session,
            server_id=row.server_id,
            bounce_type=BounceType.SMTP_API_ERROR,
            email=recipient[:320],
            details=reason,
            message_id=row.id,
            message_stream=row.message_stream,
            from_email=row.from_email,
            subject=row.subject,
            tag=row.tag,
            dump=dump,
            metadata=row.metadata_,
        )
    observe.messages_accepted(sources=[m.source for m in stored.messages])
    return results


def _accept_one(
    message: OutgoingMessage,
    *,
    server: SendingServer,
    lookups: repository.SendLookups,
    policy: Policy,
    now: datetime,
    domain: str,
    stored: _Stored,
) -> Accepted:
    problems = static_problems(message) + _account_problems(message, lookups)
    if problems and policy is Policy.REJECT:
        raise problems[0]
    recipients = message.recipients()
    inactive = [r for r in recipients if (message.message_stream, r.lower()) in lookups.suppressed]
    active = [r for r in recipients if (message.message_stream, r.lower()) not in lookups.suppressed]
    if not active and policy is Policy.REJECT:
        details = [dataclasses.replace(lookups.suppressed[(message.message_stream, r.lower())], email=r) for r in inactive]
        raise InactiveRecipients(inactive, details=details)

    refused: dict[str, str] = dict.fromkeys(message.invalid_recipients, INVALID_RECIPIENT)
    if problems:
        refused |= dict.fromkeys(recipients, " ".join(p.message for p in problems))
        active = []
    else:
        refused |= {r: InactiveRecipients([r]).message for r in inactive}

    message_id = uuid.uuid4()
    reply_to = message.reply_to
    sender_email = message.sender.email.lower() if message.sender else ""
    if not reply_to and lookups.reply_tos.get(sender_email):
        reply_to = [Mailbox(name="", email=lookups.reply_tos[sender_email])]
    mime = pipeline.compose(message, message_id=message_id, now=now, reply_to=reply_to, message_id_domain=domain)

    shown = {m.email.lower() for m in (*message.to, *message.cc)}
    bcc = message.bcc if message.envelope_recipients is None else [Mailbox(name="", email=r) for r in recipients if r.lower() not in shown]
    stream = message.message_stream if message.message_stream in lookups.streams else DEFAULT_MESSAGE_STREAM
    info = lookups.streams.get(stream)
    track_links = message.track_links or server.track_links
    # A SendAt already past (or now) sends at once, as if none were given.
    send_at = message.send_at if message.send_at is not None and message.send_at > now and active else None
    status = MessageStatus.PROCESSED if not active else MessageStatus.SCHEDULED if send_at is not None else MessageStatus.QUEUED
    row = Message(
        id=message_id,
        server_id=server.id,
        message_stream=stream,
        source=message.source.value,
        status=status.value,
        send_at=send_at,
        from_header=message.from_header,
        from_email=message.sender.email if message.sender else "",
        envelope_from=message.envelope_from or (message.sender.email if message.sender else ""),
        subject=message.subject,
        tag=message.tag,
        to=_wire_list(message.to),
        cc=_wire_list(message.cc),
        bcc=_wire_list(bcc),
        recipients=recipients,
        metadata_=message.metadata,
        attachments=message.attachment_names,
        track_opens=bool(server.track_opens or message.track_opens),
        track_links=track_links,
        sandboxed=server.delivery_type == DeliveryType.SANDBOX,
        # Broadcasts with Postmark's handling get the unsubscribe link and headers; transactional mail never does.
        list_unsubscribe=info is not None
        and info.stream_type == StreamType.BROADCASTS
        and info.unsubscribe_handling == UnsubscribeHandlingType.POSTMARK.value,
        tracked_links=0,  # counted by `accept`, off the event loop
        raw_mime=mime,
        created_at=now,
    )
    stored.messages.append(row)
    stored.recipients.extend(messages.queue_rows(active, message_id=message_id, kinds=message.kinds(), at=send_at or now))
    stored.bounces.extend((row, recipient, reason) for recipient, reason in refused.items())
    bulk = info is not None and info.stream_type == StreamType.BROADCASTS and message.sender is not None
    bulk_domain = domain_of(message.sender.email) if bulk and message.sender is not None else ""
    return Accepted(
        message_id=message_id,
        submitted_at=now,
        queued=len(active),
        inactive=inactive,
        refused=len(refused),
        bulk_domain=bulk_domain,
        aligned=bulk_domain in lookups.aligned if bulk_domain else True,
        send_at=send_at,
    )


async def forget_address(*, session: AsyncSession, email: str, placeholder: str, limit: int) -> int:
    """A data removal: the address (with its display name) becomes `placeholder` in up to `limit`
    stored Idempotency-Key responses (they repeat a send's To and Cc); the keys keep working.
    Returns how many changed."""
    rows = await repository.idempotency_keys_matching(session=session, pattern=postgres_pattern(email), limit=limit)
    for row in rows:
        row.response_body = scrub_json(row.response_body, email, placeholder)
    await session.flush()
    return len(rows)


async def purge_idempotency_keys(*, session: AsyncSession, limit: int) -> int:
    """Retention: one batch of Idempotency-Keys past their window (they no longer answer a retry)."""
    return await repository.delete_expired_idempotency_keys(session=session, window_seconds=IDEMPOTENCY_WINDOW_SECONDS, limit=limit)
