"""SMTP submissions: stored before the gateway answers 250; problems become SMTPApiError bounces.

Postmark's SMTP model: the REST API refuses bad input at once, SMTP accepts the message and
reports message-level problems (From not a signature, inactive recipients, …) as bounces.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces.service import record_bounce
from api_service.email import repository as email_repository
from api_service.email.addresses import domain_of, normalise_email
from api_service.email.service import message_id_header
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.models import Server
from api_service.smtp_gateway.parsing import SmtpMessage, content_key, parse_smtp_message, rewrite_headers
from shared.constants import FORBIDDEN_ATTACHMENT_EXTENSIONS, MAX_RECIPIENTS_PER_FIELD, BounceType, ErrorCode, MessageStatus
from shared.schemas.smtp import SmtpSubmission, SmtpSubmissionResult

IDEMPOTENCY_ENDPOINT = "smtp"


def require_smtp_enabled(server: Server) -> None:
    if not server.smtp_api_activated:
        raise PostmarkError(1460, "SMTP API access is not enabled for this server: turn on SmtpApiActivated in the server settings.")


@dataclass(slots=True)
class Verdict:
    accepted: list[str]
    refused: dict[str, str]


def _message_problems(parsed: SmtpMessage, lookups: email_repository.SendLookups, recipients: list[str]) -> list[str]:
    problems = list(parsed.problems)
    stream = lookups.streams.get(parsed.message_stream)
    if stream is None or stream.archived:
        problems.append(f"The 'MessageStream' provided does not exist on this server: '{parsed.message_stream}'.")
    elif stream.stream_type == "Inbound":
        problems.append("Sending is not supported on the supplied 'MessageStream'.")
    if parsed.sender is not None:
        email = parsed.sender.email.lower()
        if email not in lookups.reply_tos and domain_of(email) not in lookups.domains:
            problems.append(
                f"The 'From' address you supplied ({parsed.sender.email}) is not a Sender Signature on your account. "
                "Please add and confirm this address in order to be able to use it in the 'From' field of your messages."
            )
    if len(recipients) > MAX_RECIPIENTS_PER_FIELD:
        problems.append(f"Too many recipients ({len(recipients)}). The maximum is {MAX_RECIPIENTS_PER_FIELD}.")
    for name in parsed.attachment_names:
        if "." in name and name.rpartition(".")[2].lower() in FORBIDDEN_ATTACHMENT_EXTENSIONS:
            problems.append(f"Attachment file type not allowed: '{name}'.")
    return problems


def judge(parsed: SmtpMessage, lookups: email_repository.SendLookups, recipients: list[str], invalid: list[str]) -> Verdict:
    """Who gets the message, and why each other recipient does not."""
    refused = dict.fromkeys(invalid, "Invalid recipient address.")
    problems = _message_problems(parsed, lookups, recipients)
    if problems:
        reason = " ".join(problems)
        refused.update(dict.fromkeys(recipients, reason))
        return Verdict(accepted=[], refused=refused)
    accepted = []
    for recipient in recipients:
        if (parsed.message_stream, recipient.lower()) in lookups.suppressed:
            refused[recipient] = (
                f"You tried to send to a recipient that has been marked as inactive. Found inactive addresses: {recipient}. "
                "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
            )
        else:
            accepted.append(recipient)
    return Verdict(accepted=accepted, refused=refused)


async def accept_submission(
    *, session: AsyncSession, server: Server, submission: SmtpSubmission, message_id_domain: str = ""
) -> SmtpSubmissionResult:
    require_smtp_enabled(server)
    try:
        raw = base64.b64decode(submission.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None

    parsed = parse_smtp_message(raw)
    key = parsed.message_id or content_key(raw)
    if len(key) > 255:
        key = content_key(key.encode())
    if not await email_repository.reserve_idempotency_key(
        session=session, server_id=server.id, endpoint=IDEMPOTENCY_ENDPOINT, key=key, request_sha256=content_key(raw)[7:]
    ):
        existing = await email_repository.get_idempotency_key(session=session, server_id=server.id, endpoint=IDEMPOTENCY_ENDPOINT, key=key)
        if existing is not None and existing.response_body:
            return SmtpSubmissionResult(**{**existing.response_body, "Duplicate": True})
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "This message is already being stored; retry later.", 409)

    recipients: list[str] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for rcpt in submission.RcptTo:
        email = normalise_email(rcpt)
        if email is None:
            invalid.append(rcpt.replace("\x00", ""))
        elif email.lower() not in seen:
            seen.add(email.lower())
            recipients.append(email)

    lookups = await email_repository.send_lookups(
        session=session,
        server_id=server.id,
        emails={parsed.sender.email.lower()} if parsed.sender else set(),
        domains={domain_of(parsed.sender.email)} if parsed.sender else set(),
        recipients={r.lower() for r in recipients},
    )
    verdict = judge(parsed, lookups, recipients, invalid)

    message_uuid = uuid.uuid4()
    now = datetime.now(UTC)
    # Postmark replaces the client's Message-ID unless X-PM-KeepID: true asks to keep it.
    new_id = None
    if not (parsed.keep_id and parsed.message_id):
        new_id = (
            message_id_header(message_uuid, parsed.sender, message_id_domain) if parsed.sender else f"<{message_uuid}@postgate.invalid>"
        )
    stored = rewrite_headers(raw, message_id=new_id)
    sender_email = parsed.sender.email if parsed.sender else ""
    stream = parsed.message_stream if parsed.message_stream in lookups.streams else "outbound"
    subject = parsed.subject.replace("\x00", "")
    tag = parsed.tag.replace("\x00", "")
    row: dict[str, Any] = {
        "id": message_uuid,
        "server_id": server.id,
        "message_stream": stream,
        "source": "smtp",
        "status": MessageStatus.QUEUED.value if verdict.accepted else MessageStatus.PROCESSED.value,
        "from_header": f"{parsed.sender.name} <{sender_email}>" if parsed.sender and parsed.sender.name else sender_email,
        "from_email": sender_email,
        "envelope_from": submission.MailFrom.replace("\x00", "")[:255],
        "subject": subject,
        "tag": tag,
        "to": [{"Email": m.email, "Name": m.name} for m in parsed.to],
        "cc": [{"Email": m.email, "Name": m.name} for m in parsed.cc],
        "bcc": [{"Email": r, "Name": ""} for r in recipients if r.lower() not in {m.email.lower() for m in (*parsed.to, *parsed.cc)}],
        "recipients": recipients,
        "metadata_": {k.replace("\x00", ""): v.replace("\x00", "") for k, v in parsed.metadata.items()},
        "attachments": [n.replace("\x00", "") for n in parsed.attachment_names],
        "track_opens": bool(server.track_opens or parsed.track_opens),
        "track_links": parsed.track_links or server.track_links,
        "sandboxed": server.delivery_type == "Sandbox",
        "raw_mime": stored,
        "created_at": now,
    }
    kinds = {m.email.lower(): "to" for m in parsed.to} | {m.email.lower(): "cc" for m in parsed.cc}
    await email_repository.insert_messages(
        session=session,
        messages=[row],
        recipients=email_repository.now_rows(verdict.accepted, message_id=message_uuid, kinds=kinds, at=now, default_kind="bcc"),
    )
    for recipient, reason in verdict.refused.items():
        await record_bounce(
            session=session,
            server_id=server.id,
            bounce_type=BounceType.SMTP_API_ERROR,
            email=recipient[:320],
            details=reason,
            message_id=message_uuid,
            message_stream=stream,
            from_email=sender_email,
            subject=subject,
            tag=tag,
            dump=raw,
        )
    result = SmtpSubmissionResult(MessageID=str(message_uuid), Accepted=len(verdict.accepted), Refused=len(verdict.refused))
    await email_repository.store_idempotent_response(
        session=session, server_id=server.id, endpoint=IDEMPOTENCY_ENDPOINT, key=key, status=200, body=result.model_dump()
    )
    return result
