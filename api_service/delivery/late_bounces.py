"""DSNs and complaints mailed to a VERP return path become bounces on the right message."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces.service import record_bounce
from api_service.delivery import repository
from api_service.delivery.classify import Outcome, classify
from api_service.delivery.dsn import parse_report
from api_service.delivery.verp import parse_return_path
from api_service.errors import InvalidEmailRequest
from api_service.models import Message, MessageRecipient
from shared.constants import BounceType
from shared.schemas.bounce_reports import BounceReport


async def _bounce(
    session: AsyncSession, message: Message, raw: bytes, bounce_type: BounceType, email: str, details: str, content: str | None = None
) -> None:
    await record_bounce(
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
        dump=raw,
        content=content,
        metadata=message.metadata_,
    )


async def record_report(*, session: AsyncSession, report: BounceReport) -> int:
    try:
        raw = base64.b64decode(report.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None
    ids = {mid for rcpt in report.RcptTo if (mid := parse_return_path(rcpt)) is not None}
    if not ids:
        return 0
    parsed = parse_report(raw)
    messages = await repository.load_messages(session=session, ids=ids)
    matched = 0
    for message in messages.values():
        known = {r.lower() for r in message.recipients}

        if parsed.kind == "complaint":
            email = parsed.complainant or (message.recipients[0] if len(message.recipients) == 1 else None)
            if email and email.lower() in known:
                await _bounce(
                    session,
                    message,
                    raw,
                    BounceType.SPAM_COMPLAINT,
                    email,
                    "Spam complaint (ARF abuse report)",
                    raw.decode("utf-8", "replace"),
                )
                matched += 1
            continue
        for failed in parsed.failed:
            if failed.email.lower() not in known:
                continue
            text = failed.diagnostic or f"Status {failed.status}"
            # The DSN's status code decides; 552 for 5.2.x keeps mailbox-full a soft bounce.
            verdict = classify(552 if failed.status.startswith("5.2.") else 550, f"{failed.status} {text}")
            if verdict.outcome is not Outcome.BOUNCE:
                continue
            await _bounce(session, message, raw, verdict.bounce_type or BounceType.UNKNOWN, failed.email, text)
            await session.execute(
                update(MessageRecipient)
                .where(MessageRecipient.message_id == message.id, MessageRecipient.email == failed.email)
                .values(status="bounced")
            )
            matched += 1
    return matched
