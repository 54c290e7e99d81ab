"""Sending rules: streams, sender signatures, suppressions, idempotency; then queue the message."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.email import repository
from api_service.email.addresses import Mailbox, domain_of
from api_service.email.mime import MimeInput, build_mime
from api_service.email.validation import ParsedEmail, parse_email
from api_service.errors import InactiveRecipients, InvalidToken, PostmarkError, SenderSignatureNotFound
from shared.constants import IDEMPOTENCY_KEY_HEADER, ErrorCode, MessageStatus
from shared.schemas.base import format_timestamp
from shared.schemas.email import EmailRequest, SendResult


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


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    endpoint: str
    request_sha256: str

    @classmethod
    def from_request(cls, *, key: str | None, endpoint: str, body: bytes) -> Idempotency | None:
        if key is None:
            return None
        key = key.strip()
        if not key or len(key) > 255 or "\x00" in key:
            raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, f"The {IDEMPOTENCY_KEY_HEADER} header must be 1 to 255 characters.")
        return cls(key=key, endpoint=endpoint, request_sha256=hashlib.sha256(body).hexdigest())


@dataclass(slots=True)
class Replay:
    """A stored response for a repeated Idempotency-Key."""

    status: int
    body: Any


def message_id_header(message_id: uuid.UUID, sender: Mailbox, domain: str) -> str:
    return f"<{message_id}@{domain or domain_of(sender.email)}>"


def _wire_list(mailboxes: list[Mailbox]) -> list[dict[str, Any]]:
    return [{"Email": m.email, "Name": m.name} for m in mailboxes]


async def begin_idempotent(*, session: AsyncSession, server: SendingServer, idempotency: Idempotency | None) -> Replay | None:
    """Reserve the key, or return the response it already produced."""
    if idempotency is None:
        return None
    if await repository.reserve_idempotency_key(
        session=session, server_id=server.id, endpoint=idempotency.endpoint, key=idempotency.key, request_sha256=idempotency.request_sha256
    ):
        return None
    row = await repository.get_idempotency_key(session=session, server_id=server.id, endpoint=idempotency.endpoint, key=idempotency.key)
    if row is None or row.response_status is None:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS, "A request with this Idempotency-Key is still being processed; retry later.", 409
        )
    if row.request_sha256 != idempotency.request_sha256:
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "This Idempotency-Key was already used with a different request body.", 422)
    return Replay(status=row.response_status, body=row.response_body)


async def finish_idempotent(*, session: AsyncSession, server: SendingServer, idempotency: Idempotency | None, body: Any) -> None:
    if idempotency is not None:
        await repository.store_idempotent_response(
            session=session, server_id=server.id, endpoint=idempotency.endpoint, key=idempotency.key, status=200, body=body
        )


async def send_messages(
    *, session: AsyncSession, server: SendingServer, requests: list[EmailRequest], batch: bool, message_id_domain: str = ""
) -> list[SendResult]:
    """Validate and queue each message. A failing item of a batch does not stop the others;
    a single send raises its error instead."""
    parsed: list[ParsedEmail | PostmarkError] = []
    for request in requests:
        try:
            parsed.append(parse_email(request))
        except PostmarkError as exc:
            if not batch:
                raise
            parsed.append(exc)
    good = [p for p in parsed if isinstance(p, ParsedEmail)]

    lookups = await repository.send_lookups(
        session=session,
        server_id=server.id,
        emails={p.sender.email.lower() for p in good},
        domains={domain_of(p.sender.email) for p in good},
        recipients={r.lower() for p in good for r in p.envelope_recipients()},
    )
    if not lookups.streams:
        # Every server has its default streams: none means it was deleted after its token was cached.
        raise InvalidToken()

    now = datetime.now(UTC)
    submitted_at = format_timestamp(now)
    message_rows: list[dict[str, Any]] = []
    recipient_rows: list[dict[str, Any]] = []
    results: list[SendResult] = []
    for request, item in zip(requests, parsed, strict=True):
        try:
            if isinstance(item, PostmarkError):
                raise item
            result = _queue_one(
                server=server,
                request=request,
                item=item,
                lookups=lookups,
                now=now,
                submitted_at=submitted_at,
                message_id_domain=message_id_domain,
                batch=batch,
                message_rows=message_rows,
                recipient_rows=recipient_rows,
            )
        except PostmarkError as exc:
            if not batch:
                raise
            results.append(SendResult(ErrorCode=exc.error_code, Message=exc.message))
            continue
        results.append(result)
    try:
        await repository.insert_messages(session=session, messages=message_rows, recipients=recipient_rows)
    except IntegrityError as exc:
        # The only foreign key is the server's: it was deleted after its token was cached.
        raise InvalidToken() from exc
    return results


def _queue_one(
    *,
    server: SendingServer,
    request: EmailRequest,
    item: ParsedEmail,
    lookups: repository.SendLookups,
    now: datetime,
    submitted_at: str,
    message_id_domain: str,
    batch: bool,
    message_rows: list[dict[str, Any]],
    recipient_rows: list[dict[str, Any]],
) -> SendResult:
    stream = lookups.streams.get(item.message_stream)
    reply_tos, suppressed = lookups.reply_tos, lookups.suppressed
    if stream is None or stream.archived:
        raise PostmarkError(
            ErrorCode.STREAM_NOT_FOUND, f"The 'MessageStream' provided does not exist on this server: '{item.message_stream}'."
        )
    if stream.stream_type == "Inbound":
        raise PostmarkError(ErrorCode.STREAM_NOT_SENDABLE, "Sending is not supported on the supplied 'MessageStream'.")
    sender_email = item.sender.email.lower()
    if sender_email not in reply_tos and domain_of(sender_email) not in lookups.domains:
        raise SenderSignatureNotFound(item.sender.email)

    recipients = item.envelope_recipients()
    inactive = [r for r in recipients if (item.message_stream, r.lower()) in suppressed]
    active = [r for r in recipients if (item.message_stream, r.lower()) not in suppressed]
    if not active:
        raise InactiveRecipients(inactive, batch=batch)

    message_id = uuid.uuid4()
    reply_to = item.reply_to
    if not reply_to and reply_tos.get(sender_email):
        reply_to = [Mailbox(name="", email=reply_tos[sender_email])]
    try:
        raw = build_mime(
            MimeInput(
                message_id=item.custom_message_id or message_id_header(message_id, item.sender, message_id_domain),
                date=now,
                sender=item.sender,
                to=item.to,
                cc=item.cc,
                reply_to=reply_to,
                subject=item.subject,
                text_body=item.text_body,
                html_body=item.html_body,
                headers=item.headers,
                attachments=item.attachments,
            )
        )
    except (ValueError, TypeError) as exc:
        raise PostmarkError(ErrorCode.INVALID_EMAIL_REQUEST, f"The message could not be built: {exc}.") from None

    kinds = {m.email.lower(): kind for kind, group in (("bcc", item.bcc), ("cc", item.cc), ("to", item.to)) for m in group}
    message_rows.append(
        {
            "id": message_id,
            "server_id": server.id,
            "message_stream": item.message_stream,
            "source": "api",
            "status": MessageStatus.QUEUED.value,
            "from_header": request.From or "",
            "from_email": item.sender.email,
            "envelope_from": item.sender.email,
            "subject": item.subject,
            "tag": item.tag,
            "to": _wire_list(item.to),
            "cc": _wire_list(item.cc),
            "bcc": _wire_list(item.bcc),
            "recipients": recipients,
            "metadata_": item.metadata,
            "attachments": [a.name for a in item.attachments],
            "track_opens": bool(server.track_opens or item.track_opens),
            "track_links": item.track_links or server.track_links,
            "sandboxed": server.delivery_type == "Sandbox",
            "raw_mime": raw,
            "created_at": now,
        }
    )
    recipient_rows.extend(repository.now_rows(active, message_id=message_id, kinds=kinds, at=now))
    message = "OK"
    if inactive:
        message = f"Message OK, but will not deliver to these inactive addresses: {', '.join(inactive)}."
    return SendResult(
        ErrorCode=0,
        Message=message,
        To=request.To or None,
        Cc=request.Cc or None,
        Bcc=request.Bcc or None,
        SubmittedAt=submitted_at,
        MessageID=str(message_id),
    )
