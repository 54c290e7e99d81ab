"""`/messages/inbound` and `/triggers/inboundrules` (server token), and the gateway's inbound hop
(account token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api_service.core.dates import parse_query_date
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging, SearchPaging
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.inbound import repository, service
from api_service.inbound.views import details_of, summary_fields
from api_service.models import InboundRule as InboundRuleRow
from api_service.servers.deps import AccountAuth, CurrentServer
from shared.constants import ErrorCode, InboundStatus
from shared.schemas.base import ErrorResponse
from shared.schemas.inbound import (
    InboundMessageDetails,
    InboundMessageList,
    InboundMessageSummary,
    InboundRule,
    InboundRuleCreate,
    InboundRuleList,
)
from shared.schemas.inbound_smtp import (
    INBOUND_MESSAGE_PATH,
    INBOUND_RECIPIENT_PATH,
    InboundDelivery,
    InboundDeliveryResult,
    InboundRecipientQuery,
    InboundRecipientVerdict,
)

router = APIRouter(route_class=TransactionalRoute)
MESSAGE_ERRORS = error_responses(
    invalid="ErrorCode 700: invalid query (status, dates, count + offset > 10000); 702: only a Blocked message can bypass the rules; "
    "703: only a Failed message can be retried",
    not_found="ErrorCode 701: no such inbound message",
)
RULE_ERRORS = error_responses(
    invalid="ErrorCode 800: invalid query; 809: no Rule; 810: the rule exists; 813: not an email address or domain",
    not_found="ErrorCode 812: no such rule",
)


@router.get("/messages/inbound", response_model=InboundMessageList, responses=MESSAGE_ERRORS, tags=["Messages"])
async def list_inbound(
    server: CurrentServer,
    session: Session,
    paging: SearchPaging,
    recipient: Annotated[str | None, Query()] = None,
    fromemail: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query()] = None,
    subject: Annotated[str | None, Query()] = None,
    mailboxhash: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(description="blocked, processed, queued, failed or scheduled")] = None,
    fromdate: Annotated[str | None, Query(description="YYYY-MM-DD or ISO 8601; no offset means US Eastern, as in Postmark")] = None,
    todate: Annotated[str | None, Query(description="Inclusive")] = None,
) -> InboundMessageList:
    """Search received messages, newest first."""
    status_value = None
    if status:
        status_value = next((s for s in InboundStatus if s.value.lower() == status.strip().lower()), None)
        if status_value is None:
            raise PostmarkError(ErrorCode.MESSAGE_QUERY, "status must be blocked, processed, queued, failed or scheduled.")
    filters = repository.InboundFilter(
        recipient=recipient,
        from_email=fromemail,
        tag=tag,
        status=status_value,
        subject=subject,
        mailbox_hash=mailboxhash,
        from_date=parse_query_date(fromdate, error_code=ErrorCode.MESSAGE_QUERY),
        to_date=parse_query_date(todate, error_code=ErrorCode.MESSAGE_QUERY, end_of_day=True),
    )
    total, rows = await service.list_messages(session=session, server_id=server.id, filters=filters, page=paging)
    return InboundMessageList(TotalCount=total, InboundMessages=[InboundMessageSummary(**summary_fields(m)) for m in rows])


@router.get("/messages/inbound/{message_id}/details", response_model=InboundMessageDetails, responses=MESSAGE_ERRORS, tags=["Messages"])
async def inbound_details(message_id: str, server: CurrentServer, session: Session) -> InboundMessageDetails:
    """A received message with its bodies, the reply without its quote, headers and why it was blocked."""
    message = await service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    return details_of(message)


@router.put("/messages/inbound/{message_id}/bypass", response_model=ErrorResponse, responses=MESSAGE_ERRORS, tags=["Messages"])
async def bypass_inbound(
    message_id: str,
    server: CurrentServer,
    session: Session,
    settings: AppSettings,
    _body: Annotated[dict[str, Any] | None, Body()] = None,
) -> ErrorResponse:
    """Post a blocked message to the InboundHookUrl anyway."""
    message = await service.bypass(session=session, settings=settings, server=server, message_id=message_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Successfully bypassed message: {message.id}")


@router.put("/messages/inbound/{message_id}/retry", response_model=ErrorResponse, responses=MESSAGE_ERRORS, tags=["Messages"])
async def retry_inbound(
    message_id: str,
    server: CurrentServer,
    session: Session,
    settings: AppSettings,
    _body: Annotated[dict[str, Any] | None, Body()] = None,
) -> ErrorResponse:
    """Post a failed message to the InboundHookUrl again, with a new round of retries."""
    message = await service.retry(session=session, settings=settings, server=server, message_id=message_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Successfully rescheduled failed message: {message.id}")


def rule_to_wire(rule: InboundRuleRow) -> InboundRule:
    return InboundRule(ID=rule.id, Rule=rule.rule)


@router.get("/triggers/inboundrules", response_model=InboundRuleList, responses=RULE_ERRORS, tags=["Inbound rules"])
async def list_rules(server: CurrentServer, session: Session, paging: Paging) -> InboundRuleList:
    """List the senders this server blocks."""
    total, rules = await service.list_rules(session=session, server_id=server.id, page=paging)
    return InboundRuleList(TotalCount=total, InboundRules=[rule_to_wire(r) for r in rules])


@router.post("/triggers/inboundrules", response_model=InboundRule, responses=RULE_ERRORS, tags=["Inbound rules"])
async def create_rule(server: CurrentServer, session: Session, data: Annotated[InboundRuleCreate, Body()]) -> InboundRule:
    """Block a sender: an email address, or a domain (with its subdomains)."""
    return rule_to_wire(await service.create_rule(session=session, server_id=server.id, data=data))


@router.delete("/triggers/inboundrules/{rule_id}", response_model=ErrorResponse, responses=RULE_ERRORS, tags=["Inbound rules"])
async def delete_rule(rule_id: EntityId, server: CurrentServer, session: Session) -> ErrorResponse:
    """Stop blocking a sender."""
    rule = await service.delete_rule(session=session, server_id=server.id, rule_id=rule_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Rule {rule} removed.")


# --- the gateway's hop ---------------------------------------------------------------------------------


@router.post(INBOUND_RECIPIENT_PATH, response_model=InboundRecipientVerdict, include_in_schema=False, dependencies=[AccountAuth])
async def check_recipient(
    session: Session, settings: AppSettings, query: Annotated[InboundRecipientQuery, Body()]
) -> InboundRecipientVerdict:
    """Whether the inbound listener may accept mail for an address (its RCPT TO check)."""
    verdict = await service.resolve_recipient(session=session, settings=settings, address=query.Address)
    return InboundRecipientVerdict(Accepted=verdict.server is not None or verdict.report, DomainAccepted=verdict.domain_accepted)


@router.post(INBOUND_MESSAGE_PATH, response_model=InboundDeliveryResult, include_in_schema=False, dependencies=[AccountAuth])
async def receive(session: Session, settings: AppSettings, delivery: Annotated[InboundDelivery, Body()]) -> InboundDeliveryResult:
    """Store a message the inbound listener received; committed before this answers (then the
    listener says 250)."""
    stored = await service.receive(session=session, settings=settings, delivery=delivery)
    return InboundDeliveryResult(MessageIDs=stored.ids)
