"""`/webhooks` (server token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api_service.core.errors import error_responses
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.models import Webhook as WebhookRow
from api_service.servers.deps import CurrentServer
from api_service.webhooks import service
from shared.constants import ErrorCode
from shared.schemas.base import ErrorResponse, format_timestamp
from shared.schemas.webhook_payloads import WebhookPayload
from shared.schemas.webhooks import (
    Webhook,
    WebhookList,
    WebhookReplay,
    WebhookReplayResult,
    WebhookSecret,
    WebhookSecretRotation,
    WebhookWrite,
)

router = APIRouter(route_class=TransactionalRoute, tags=["Webhooks"])
ERRORS = error_responses(
    invalid="ErrorCodes 1226 no such stream, 1351 inbound stream, 1354 Url invalid or not a public address, 1357 MessageStream cannot change, 1358 HttpHeaders invalid, 1361 trigger invalid",
    not_found="ErrorCode 1352: no such webhook",
)


# What Postgate POSTs to a webhook's Url: documented as an OpenAPI callback of the create route.
events = APIRouter()


@events.post("{$request.body#/Url}", response_model=None, summary="Event webhook")
def webhook_event(body: Annotated[WebhookPayload, Body()]) -> None:
    """One event, told apart by RecordType; any 2xx answer ends the retries, a 403 stops them."""


def to_wire(hook: WebhookRow) -> Webhook:
    auth = {"Username": hook.http_auth_username, "Password": hook.http_auth_password} if hook.http_auth_username else None
    return Webhook(
        ID=hook.id, Url=hook.url, MessageStream=hook.message_stream, HttpAuth=auth, HttpHeaders=hook.http_headers, Triggers=hook.triggers
    )


@router.get("/webhooks", response_model=WebhookList, responses=ERRORS)
async def list_webhooks(server: CurrentServer, session: Session, messagestream: Annotated[str | None, Query()] = None) -> WebhookList:
    """List webhooks, optionally of one stream."""
    return WebhookList(
        Webhooks=[to_wire(h) for h in await service.list_webhooks(session=session, server_id=server.id, stream=messagestream)]
    )


@router.post("/webhooks", response_model=Webhook, responses=ERRORS, callbacks=events.routes)
async def create_webhook(server: CurrentServer, session: Session, settings: AppSettings, data: Annotated[WebhookWrite, Body()]) -> Webhook:
    """Create a webhook for a stream's events (Bounce, Delivery, SpamComplaint, SubscriptionChange …)."""
    return to_wire(await service.create_webhook(session=session, server=server, data=data, url_guard=settings.webhook_url_guard()))


@router.get("/webhooks/{webhook_id}", response_model=Webhook, responses=ERRORS)
async def get_webhook(webhook_id: EntityId, server: CurrentServer, session: Session) -> Webhook:
    """Get a webhook."""
    return to_wire(await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id))


@router.put("/webhooks/{webhook_id}", response_model=Webhook, responses=ERRORS)
async def edit_webhook(
    webhook_id: EntityId, server: CurrentServer, session: Session, settings: AppSettings, data: Annotated[WebhookWrite, Body()]
) -> Webhook:
    """Edit a webhook; Triggers are merged into the current ones."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    return to_wire(await service.edit_webhook(session=session, hook=hook, data=data, url_guard=settings.webhook_url_guard()))


@router.delete("/webhooks/{webhook_id}", response_model=ErrorResponse, responses=ERRORS)
async def delete_webhook(webhook_id: EntityId, server: CurrentServer, session: Session) -> ErrorResponse:
    """Delete a webhook."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await service.delete_webhook(session=session, hook=hook)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Webhook {webhook_id} removed.")


@router.post("/webhooks/{webhook_id}/secret", response_model=WebhookSecret, responses=ERRORS)
async def rotate_webhook_secret(
    webhook_id: EntityId, server: CurrentServer, session: Session, data: Annotated[WebhookSecretRotation | None, Body()] = None
) -> WebhookSecret:
    """Beyond Postmark: a new signing key for this webhook, shown once; the previous key signs too for `OverlapSeconds`."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    overlap = (data or WebhookSecretRotation()).OverlapSeconds
    rotated = await service.rotate_secret(session=session, hook=hook, overlap_seconds=overlap, server_secret=server.webhook_secret)
    return WebhookSecret(ID=hook.id, Secret=rotated.secret, PreviousSecretValidUntil=format_timestamp(rotated.previous_valid_until))


@router.post("/webhooks/{webhook_id}/replay", response_model=WebhookReplayResult, responses=ERRORS)
async def replay_webhook(
    webhook_id: EntityId, server: CurrentServer, session: Session, data: Annotated[WebhookReplay, Body()]
) -> WebhookReplayResult:
    """Beyond Postmark: send this webhook's past deliveries again, with their first payloads: one, or a range of up to 7 days."""
    hook = await service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    count = await service.replay(session=session, hook=hook, delivery_id=data.DeliveryID, since=data.From, until=data.To)
    return WebhookReplayResult(ID=hook.id, Replayed=count)
