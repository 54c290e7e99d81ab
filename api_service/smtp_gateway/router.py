"""Internal endpoints the SMTP gateway calls; authenticated with the submitting server's token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api_service.core.deps import AppSettings, CurrentServer, Session, TransactionalRoute
from api_service.smtp_gateway import service
from shared.schemas.smtp import SMTP_AUTH_PATH, SMTP_SUBMIT_PATH, SmtpAuthResponse, SmtpSubmission, SmtpSubmissionResult

router = APIRouter(route_class=TransactionalRoute, tags=["SMTP gateway (internal)"], include_in_schema=False)


@router.post(SMTP_AUTH_PATH, response_model=SmtpAuthResponse)
async def smtp_auth(server: CurrentServer) -> SmtpAuthResponse:
    """Check a server token for SMTP AUTH."""
    return SmtpAuthResponse(ServerID=server.id, SmtpApiActivated=server.smtp_api_activated)


@router.post(SMTP_SUBMIT_PATH, response_model=SmtpSubmissionResult)
async def smtp_submit(
    server: CurrentServer, session: Session, settings: AppSettings, submission: Annotated[SmtpSubmission, Body()]
) -> SmtpSubmissionResult:
    """Store one message received over SMTP; committed before this answers."""
    return await service.accept_submission(
        session=session, server=server, submission=submission, message_id_domain=settings.message_id_domain
    )
