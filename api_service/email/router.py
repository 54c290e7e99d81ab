"""`POST /email`, `/email/batch`, `/email/withTemplate` and `/email/batchWithTemplates` (server token): the JSON
entry point to intake. The templated routes differ only in how a message is read; rendering is a step of `accept`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.domains import guardrails
from api_service.domains.dns import lookup_for
from api_service.email import intake, service
from api_service.email.from_json import from_json, from_templated_json
from api_service.email.intake import Intake, Send, Sent
from api_service.email.message import OutgoingMessage
from api_service.errors import InactiveRecipients, PostmarkError
from api_service.mail.addresses import domain_of
from api_service.servers.cache import ServerSnapshot
from api_service.servers.deps import SendingServer
from shared.constants import DEFAULT_MESSAGE_STREAM, MAX_BATCH_MESSAGES, ErrorCode
from shared.schemas.base import ErrorResponse, format_timestamp
from shared.schemas.email import EmailRequest, SendResult
from shared.schemas.templates import TemplatedBatchRequest, TemplatedEmailRequest

router = APIRouter(route_class=TransactionalRoute, tags=["Email"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong server token (ErrorCode 10)"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    415: {"model": ErrorResponse, "description": "Body is not JSON (ErrorCode 409)"},
    422: {
        "model": ErrorResponse,
        "description": "300 invalid request, 400 no sender signature, 402 bad JSON, 406 inactive recipients, 410 batch too large, 411 forbidden attachment, 1235 unknown stream",
    },
}
TEMPLATED_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    422: {
        "model": ErrorResponse,
        "description": ERRORS[422]["description"]
        + "; 1101 no such template (or none named), 1120 TemplateModel missing, 1121 rendered field too large, "
        "1122 the model does not fit the template, 1123 Subject, HtmlBody or TextBody given",
    }
}
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retry-safe key: the same key and body return the first response"),
]


def read(request: EmailRequest) -> OutgoingMessage | PostmarkError:
    try:
        return from_templated_json(request) if isinstance(request, TemplatedEmailRequest) else from_json(request)
    except PostmarkError as exc:
        return exc


def test_result(request: EmailRequest) -> SendResult:
    """`POSTMARK_API_TEST`: every check that needs no account, nothing stored or sent."""
    item = read(request)
    problems = [item] if isinstance(item, PostmarkError) else service.static_problems(item)
    if problems:
        raise problems[0]
    return SendResult(
        ErrorCode=0,
        Message="Test job accepted",
        To=request.To,
        SubmittedAt=format_timestamp(datetime.now(UTC)),
        MessageID=str(uuid.uuid4()),
    )


def send_result(request: EmailRequest, outcome: service.Accepted, *, checks: bool = False) -> SendResult:
    message = "OK"
    if outcome.inactive:
        message = f"Message OK, but will not deliver to these inactive addresses: {', '.join(outcome.inactive)}."
    if checks and outcome.bulk_domain:
        dmarc = guardrails.DMARC.known(outcome.bulk_domain)
        warnings = guardrails.bulk_warnings(domain=outcome.bulk_domain, aligned=outcome.aligned, dmarc=dmarc)
        if warnings:  # still sent: the sender learns what Gmail and Yahoo will hold against it
            message = " ".join([message.rstrip(".") + ".", *(f"Warning: {w}." for w in warnings)])
    return SendResult(
        ErrorCode=0,
        Message=message,
        To=request.To or None,
        Cc=request.Cc or None,
        Bcc=request.Bcc or None,
        SubmittedAt=format_timestamp(outcome.submitted_at),
        MessageID=str(outcome.message_id),
        SendAt=format_timestamp(outcome.send_at) if outcome.send_at is not None else None,
    )


def batch_error(error: PostmarkError) -> SendResult:
    if isinstance(error, InactiveRecipients):
        # Postmark words it differently in a batch; the structured list is the same.
        error = InactiveRecipients(error.addresses, batch=True, details=error.details)
        return SendResult(ErrorCode=error.error_code, Message=error.message, **error.extra)
    return SendResult(ErrorCode=error.error_code, Message=error.message)


def dump(results: list[SendResult]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude_none=True) for r in results]


async def prefetch_dmarc(request: Request, items: Sequence[OutgoingMessage | PostmarkError]) -> bool:
    """Whether the bulk-sender checks are on; if so, have the DMARC records of these senders' domains
    looked up (a short wait for a domain not yet known, see `domains.guardrails`)."""
    settings: Settings = request.app.state.settings
    if not settings.bulk_sender_checks:
        return False
    dns = lookup_for(settings.dns_resolver)
    # The default stream is always Transactional: its mail is not held to the bulk rules.
    senders = {
        domain_of(i.sender.email)
        for i in items
        if isinstance(i, OutgoingMessage) and i.sender is not None and i.message_stream != DEFAULT_MESSAGE_STREAM
    }
    await asyncio.gather(*(guardrails.DMARC.prefetch(domain, dns=dns) for domain in senders))
    return True


def intake_of(request: Request) -> Intake:
    engine: Intake = request.app.state.intake
    return engine


async def idempotency_of(request: Request, *, key: str | None, endpoint: str) -> service.Idempotency | None:
    return None if key is None else service.Idempotency.from_header(key=key, endpoint=endpoint, body=await request.body())


def answer(sent: Sent) -> Any:
    return JSONResponse(sent.body, status_code=sent.status) if sent.replay else sent.body


async def send_one(
    *,
    request: Request,
    server: ServerSnapshot | None,
    message: EmailRequest,
    endpoint: str,
    idempotency_key: str | None,
) -> Any:
    if server is None:
        return test_result(message)
    item = read(message)
    if isinstance(item, PostmarkError):
        raise item
    checks = await prefetch_dmarc(request, [item])

    def respond(outcomes: list[intake.Outcome]) -> dict[str, Any]:
        [outcome] = outcomes
        if isinstance(outcome, PostmarkError):
            raise outcome
        return send_result(message, outcome, checks=checks).model_dump(exclude_none=True)

    # Shares a transaction with the concurrent sends of this process; returns after its COMMIT.
    sent = await intake_of(request).send(
        Send(
            server=server,
            items=[item],
            policy=service.Policy.REJECT,
            idempotency=await idempotency_of(request, key=idempotency_key, endpoint=endpoint),
            respond=respond,
        )
    )
    return answer(sent)


async def send_many(
    *,
    request: Request,
    session: AsyncSession,
    settings: Settings,
    server: ServerSnapshot | None,
    messages: Sequence[EmailRequest],
    endpoint: str,
    idempotency_key: str | None,
) -> Any:
    if len(messages) > MAX_BATCH_MESSAGES:
        raise PostmarkError(ErrorCode.TOO_MANY_BATCH_MESSAGES, "You may only send up to 500 messages in a single batched request.")
    if server is None:
        results = []
        for m in messages:
            try:
                results.append(test_result(m))
            except PostmarkError as exc:
                results.append(batch_error(exc))
        return dump(results)

    items = [read(m) for m in messages]
    checks = await prefetch_dmarc(request, items)

    def respond(outcomes: list[intake.Outcome]) -> list[dict[str, Any]]:
        return dump(
            [
                batch_error(o) if isinstance(o, PostmarkError) else send_result(m, o, checks=checks)
                for m, o in zip(messages, outcomes, strict=True)
            ]
        )

    # In the request's transaction, committed before the response leaves (TransactionalRoute).
    sent = await intake.accept_in(
        session=session,
        send=Send(
            server=server,
            items=items,
            policy=service.Policy.REJECT,
            idempotency=await idempotency_of(request, key=idempotency_key, endpoint=endpoint),
            respond=respond,
        ),
        message_id_domain=settings.message_id_domain,
    )
    return answer(sent)


@router.post("/email", response_model=SendResult, response_model_exclude_none=True, responses=ERRORS)
async def send_email(
    request: Request,
    server: SendingServer,
    message: Annotated[EmailRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send one email. The message is stored and queued before the 200 is returned."""
    return await send_one(
        request=request,
        server=server,
        message=message,
        endpoint="email",
        idempotency_key=idempotency_key,
    )


@router.post("/email/batch", response_model=list[SendResult], response_model_exclude_none=True, responses=ERRORS)
async def send_batch(
    request: Request,
    session: Session,
    settings: AppSettings,
    server: SendingServer,
    messages: Annotated[list[EmailRequest], Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send up to 500 emails; each gets its own result, in request order."""
    return await send_many(
        request=request,
        session=session,
        settings=settings,
        server=server,
        messages=messages,
        endpoint="email/batch",
        idempotency_key=idempotency_key,
    )


@router.post("/email/withtemplate", response_model=SendResult, response_model_exclude_none=True, responses=TEMPLATED_ERRORS)
async def send_email_with_template(
    request: Request,
    server: SendingServer,
    message: Annotated[TemplatedEmailRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send one email rendered from a stored template (`TemplateId` or `TemplateAlias`) and `TemplateModel`.

    The rendered message (inside its layout, `<style>` rules inlined unless `InlineCss` is false) is what is stored
    and delivered. Every other field works as on `POST /email`.
    """
    return await send_one(
        request=request,
        server=server,
        message=message,
        endpoint="email/withTemplate",
        idempotency_key=idempotency_key,
    )


@router.post("/email/batchwithtemplates", response_model=list[SendResult], response_model_exclude_none=True, responses=TEMPLATED_ERRORS)
async def send_batch_with_templates(
    request: Request,
    session: Session,
    settings: AppSettings,
    server: SendingServer,
    batch: Annotated[TemplatedBatchRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send up to 500 templated emails (`{"Messages": [...]}`); each gets its own result, in request order."""
    return await send_many(
        request=request,
        session=session,
        settings=settings,
        server=server,
        messages=batch.Messages,
        endpoint="email/batchWithTemplates",
        idempotency_key=idempotency_key,
    )
