"""`/webhooks` (server token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api_service.core.deps import CurrentServer, Session, TransactionalRoute
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId
from api_service.errors import PostmarkError
from api_service.models import Webhook as WebhookRow
from api_service.servers import repository as servers_repository
from api_service.webhooks import repository, service
from shared.constants import DEFAULT_MESSAGE_STREAM
from shared.schemas.base import ErrorResponse
from shared.schemas.webhooks import Webhook, WebhookList, WebhookWrite

router = APIRouter(route_class=TransactionalRoute, tags=["Webhooks"])
ERRORS = error_responses(
    invalid="ErrorCodes 1226 no such stream, 1351 inbound stream, 1354 Url invalid, 1357 MessageStream cannot change, 1358 HttpHeaders invalid, 1361 trigger invalid",
    not_found="ErrorCode 1352: no such webhook",
)


def to_wire(hook: WebhookRow) -> Webhook:
    auth = {"Username": hook.http_auth_username, "Password": hook.http_auth_password} if hook.http_auth_username else None
    return Webhook(
        ID=hook.id, Url=hook.url, MessageStream=hook.message_stream, HttpAuth=auth, HttpHeaders=hook.http_headers, Triggers=hook.triggers
    )


@router.get("/webhooks", response_model=WebhookList, responses=ERRORS)
async def list_webhooks(server: CurrentServer, session: Session, messagestream: Annotated[str | None, Query()] = None) -> WebhookList:
    """List webhooks, optionally of one stream."""
    rows = await repository.list_webhooks(session=session, server_id=server.id, stream=messagestream.lower() if messagestream else None)
    return WebhookList(Webhooks=[to_wire(h) for h in rows])


@router.post("/webhooks", response_model=Webhook, responses=ERRORS)
async def create_webhook(server: CurrentServer, session: Session, data: Annotated[WebhookWrite, Body()]) -> Webhook:
    """Create a webhook for a stream's events (Bounce, Delivery, SpamComplaint, SubscriptionChange …)."""
    stream_id = (data.MessageStream or DEFAULT_MESSAGE_STREAM).lower()
    stream = await servers_repository.get_stream(session=session, server_id=server.id, stream_id=stream_id)
    if stream is None:
        raise PostmarkError(1226, f"The message stream '{stream_id}' was not found.")
    if stream.stream_type == "Inbound":
        raise PostmarkError(1351, "Webhooks cannot be added to an inbound stream; use InboundHookUrl.")
    hook = WebhookRow(
        server_id=server.id,
        url=service.check_url(data.Url),
        message_stream=stream_id,
        http_auth_username=(data.HttpAuth.Username or "") if data.HttpAuth else "",
        http_auth_password=(data.HttpAuth.Password or "") if data.HttpAuth else "",
        http_headers=service.check_headers([h.model_dump() for h in data.HttpHeaders or []]),
        triggers=service.merge_triggers({}, data.Triggers),
    )
    session.add(hook)
    await session.flush()
    return to_wire(hook)


@router.get("/webhooks/{webhook_id}", response_model=Webhook, responses=ERRORS)
async def get_webhook(webhook_id: EntityId, server: CurrentServer, session: Session) -> Webhook:
    """Get a webhook."""
    return to_wire(await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id))


@router.put("/webhooks/{webhook_id}", response_model=Webhook, responses=ERRORS)
async def edit_webhook(webhook_id: EntityId, server: CurrentServer, session: Session, data: Annotated[WebhookWrite, Body()]) -> Webhook:
    """Edit a webhook; Triggers are merged into the current ones."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    if data.MessageStream is not None and data.MessageStream.lower() != hook.message_stream:
        raise PostmarkError(1357, "The MessageStream of a webhook cannot be changed.")
    if data.Url is not None:
        hook.url = service.check_url(data.Url)
    if data.HttpAuth is not None:
        hook.http_auth_username, hook.http_auth_password = data.HttpAuth.Username or "", data.HttpAuth.Password or ""
    if data.HttpHeaders is not None:
        hook.http_headers = service.check_headers([h.model_dump() for h in data.HttpHeaders])
    if data.Triggers is not None:
        hook.triggers = service.merge_triggers(hook.triggers, data.Triggers)
    await session.flush()
    return to_wire(hook)


@router.delete("/webhooks/{webhook_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_webhook(webhook_id: EntityId, server: CurrentServer, session: Session) -> ErrorResponse:
    """Delete a webhook."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await session.delete(hook)
    await session.flush()
    return ErrorResponse(ErrorCode=0, Message=f"Webhook {webhook_id} removed.")
