"""The SMTP entry point to intake: internal endpoints the gateway (smtp_service) calls over HTTP.

Every one answers only the gateway (its internal token, `guard.InternalRoute`); the messages and
AUTH checks it hands over carry the token of the server they are for."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Body, Request

from api_service.core import metrics
from api_service.core.offload import cpu_bound
from api_service.core.ratelimit import RateLimits, bucket_key
from api_service.deps import AppSettings, Session
from api_service.errors import InvalidEmailRequest, PostmarkError
from api_service.servers.deps import CurrentServer
from api_service.servers.service import get_servers_by_tokens, require_smtp_enabled
from api_service.smtp_gateway import service
from api_service.smtp_gateway.guard import InternalRoute
from shared.constants import ErrorCode
from shared.schemas.smtp import (
    SMTP_AUTH_BATCH_PATH,
    SMTP_AUTH_PATH,
    SMTP_BATCH_PATH,
    SMTP_SUBMIT_PATH,
    SmtpAuthBatch,
    SmtpAuthBatchResult,
    SmtpAuthResponse,
    SmtpAuthVerdict,
    SmtpBatchOutcome,
    SmtpBatchResult,
    SmtpSubmission,
    SmtpSubmissionResult,
    decode_smtp_batch,
)

router = APIRouter(route_class=InternalRoute, tags=["SMTP gateway (internal)"], include_in_schema=False)


class RateLimited(PostmarkError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            f"Rate limit exceeded: too many requests with this server token. Retry after {retry_after} seconds.",
            429,
        )
        self.retry_after = retry_after


def read_submission(submission: SmtpSubmission) -> service.Read:
    """The message submitted and the key that recognises a retry of it."""
    try:
        raw = base64.b64decode(submission.RawMessage, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEmailRequest("RawMessage is not valid Base64.") from None
    return service.read_raw(raw, mail_from=submission.MailFrom, rcpt_tos=submission.RcptTo)


@router.post(SMTP_AUTH_PATH, response_model=SmtpAuthResponse)
async def smtp_auth(server: CurrentServer) -> SmtpAuthResponse:
    """Check a server token for SMTP AUTH (the gateway asks the batch endpoint; this is the same check)."""
    return SmtpAuthResponse(ServerID=server.id, SmtpApiActivated=server.smtp_api_activated)


@router.post(SMTP_AUTH_BATCH_PATH, response_model=SmtpAuthBatchResult)
async def smtp_auth_batch(session: Session, batch: Annotated[SmtpAuthBatch, Body()]) -> SmtpAuthBatchResult:
    """Check the server tokens of concurrent SMTP AUTH commands, in one query."""
    found = await get_servers_by_tokens(session=session, tokens=batch.Tokens)
    return SmtpAuthBatchResult(
        Verdicts=[SmtpAuthVerdict() if s is None else SmtpAuthVerdict(ServerID=s.id, SmtpApiActivated=s.smtp_api_activated) for s in found]
    )


@router.post(SMTP_SUBMIT_PATH, response_model=SmtpSubmissionResult)
async def smtp_submit(
    server: CurrentServer, session: Session, settings: AppSettings, submission: Annotated[SmtpSubmission, Body()]
) -> SmtpSubmissionResult:
    """Store one message received over SMTP (base64 in JSON); committed before this answers. What is
    wrong with the message becomes SMTPApiError bounces, not an error here.

    The server's current row, not the send path's cached settings: SMTP turned off (by any API
    process) or a deleted server refuses the very next submission."""
    require_smtp_enabled(server)
    # Decoding, parsing and hashing a 10 MB message would hold the event loop: a thread does it.
    read = await cpu_bound(len(submission.RawMessage), read_submission, submission)
    return await service.store_one(session=session, server=server, read=read, message_id_domain=settings.message_id_domain)


@router.post(SMTP_BATCH_PATH, response_model=SmtpBatchResult)
async def smtp_submit_batch(request: Request, session: Session, settings: AppSettings) -> SmtpBatchResult:
    """Store the messages the gateway gathered (raw, each with its server token) in one transaction,
    committed before this answers; one outcome per message, each as it would have been alone."""
    try:
        messages = decode_smtp_batch(await request.body())
    except ValueError:
        raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, "The body is not an SMTP batch.", 400) from None
    # The rate-limit middleware sees no token on this path: each message counts against its own.
    refused: dict[int, PostmarkError] = {}
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        for index, message in enumerate(messages):
            decision = await limits.limiter.check(bucket_key("server", message.envelope.Token.encode()), limits.server)
            if not decision.allowed:
                metrics.RATE_LIMITED.labels("server").inc()
                refused[index] = RateLimited(decision.retry_after)
    outcomes = await service.store_batch(session=session, messages=messages, refused=refused, message_id_domain=settings.message_id_domain)
    return SmtpBatchResult(Outcomes=[_wire(outcome) for outcome in outcomes])


def _wire(outcome: service.Outcome) -> SmtpBatchOutcome:
    if isinstance(outcome, SmtpSubmissionResult):
        return SmtpBatchOutcome(Status=200, Result=outcome)
    return SmtpBatchOutcome(
        Status=outcome.http_status,
        ErrorCode=outcome.error_code,
        Message=outcome.message,
        RetryAfter=outcome.retry_after if isinstance(outcome, RateLimited) else 0,
    )
