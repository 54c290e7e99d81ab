"""The SMTP entry point to intake: internal endpoints the gateway (smtp_service) calls over HTTP,
authenticated with the submitting server's token."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import AppSettings, Session, TransactionalRoute
from api_service.core.offload import cpu_bound
from api_service.email import service
from api_service.email.from_mime import from_mime
from api_service.email.message import OutgoingMessage
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.servers.deps import CurrentServer
from api_service.servers.service import require_smtp_enabled
from shared.schemas.smtp import SMTP_AUTH_PATH, SMTP_SUBMIT_PATH, SmtpAuthResponse, SmtpSubmission, SmtpSubmissionResult

router = APIRouter(route_class=TransactionalRoute, tags=["SMTP gateway (internal)"], include_in_schema=False)


def read_submission(submission: SmtpSubmission) -> tuple[OutgoingMessage, service.Idempotency]:
    """The message submitted and the key that recognises a retry of it."""
    try:
        raw = base64.b64decode(submission.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None
    message = from_mime(raw, mail_from=submission.MailFrom, rcpt_tos=submission.RcptTo)
    return message, service.Idempotency.for_smtp(raw=raw, recipients=message.recipients() + message.invalid_recipients)


@router.post(SMTP_AUTH_PATH, response_model=SmtpAuthResponse)
async def smtp_auth(server: CurrentServer) -> SmtpAuthResponse:
    """Check a server token for SMTP AUTH."""
    return SmtpAuthResponse(ServerID=server.id, SmtpApiActivated=server.smtp_api_activated)


@router.post(SMTP_SUBMIT_PATH, response_model=SmtpSubmissionResult)
async def smtp_submit(
    server: CurrentServer, session: Session, settings: AppSettings, submission: Annotated[SmtpSubmission, Body()]
) -> SmtpSubmissionResult:
    """Store one message received over SMTP; committed before this answers. What is wrong with the
    message becomes SMTPApiError bounces, not an error here.

    The server's current row, not the send path's cached settings: SMTP turned off (by any API
    process) or a deleted server refuses the very next submission."""
    require_smtp_enabled(server)
    # Decoding, parsing and hashing a 10 MB message would hold the event loop: a thread does it.
    message, idem = await cpu_bound(len(submission.RawMessage), read_submission, submission)
    replay = await service.begin_idempotent(session=session, server_id=server.id, idempotency=idem)
    if replay is not None:
        return SmtpSubmissionResult.model_validate({**replay.body, "Duplicate": True})
    [outcome] = await service.accept(
        session=session, server=server, items=[message], policy=service.Policy.BOUNCE, message_id_domain=settings.message_id_domain
    )
    if isinstance(outcome, PostmarkError):
        raise outcome
    result = SmtpSubmissionResult(MessageID=str(outcome.message_id), Accepted=outcome.queued, Refused=outcome.refused)
    await service.finish_idempotent(session=session, server_id=server.id, idempotency=idem, body=result.model_dump())
    return result
