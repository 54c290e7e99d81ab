"""A server's webhooks: the list, add, a webhook's page with its recent deliveries, edit, test, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, ServerPage, Signed, checked, field, notice_of, redirect, sendable_streams, server_url
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.models import Server, Webhook
from api_service.webhooks import service as webhooks_service
from shared.constants import DEFAULT_MESSAGE_STREAM
from shared.schemas.webhooks import WebhookHttpAuth, WebhookHttpHeader, WebhookWrite

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

WEBHOOK_TRIGGERS = ("Delivery", "Bounce", "SpamComplaint", "SubscriptionChange", "Open", "Click")


def parse_headers(text: str) -> list[WebhookHttpHeader]:
    headers = []
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers.append(WebhookHttpHeader(Name=name.strip(), Value=value.strip()))
    return headers


def webhook_write(form: FormData, *, stream: str | None, keep_password: str = "") -> WebhookWrite:
    triggers: dict[str, dict[str, Any]] = {name: {"Enabled": checked(form, f"trigger_{name}")} for name in WEBHOOK_TRIGGERS}
    triggers["Bounce"]["IncludeContent"] = checked(form, "include_content_Bounce")
    triggers["SpamComplaint"]["IncludeContent"] = checked(form, "include_content_SpamComplaint")
    triggers["Open"]["PostFirstOpenOnly"] = checked(form, "post_first_open_only")
    username = field(form, "auth_username").strip()
    password = field(form, "auth_password") or (keep_password if username else "")
    return WebhookWrite(
        Url=field(form, "url"),
        MessageStream=stream,
        HttpAuth=WebhookHttpAuth(Username=username, Password=password),
        HttpHeaders=parse_headers(field(form, "headers")),
        Triggers=triggers,
    )


def webhook_values(form: FormData | None = None, hook: Any = None) -> dict[str, Any]:
    if form is not None:
        return {
            "url": field(form, "url"),
            "stream": field(form, "stream", DEFAULT_MESSAGE_STREAM),
            "auth_username": field(form, "auth_username"),
            "headers": field(form, "headers"),
            "enabled": {n: checked(form, f"trigger_{n}") for n in WEBHOOK_TRIGGERS},
            "include_content": {n: checked(form, f"include_content_{n}") for n in ("Bounce", "SpamComplaint")},
            "post_first_open_only": checked(form, "post_first_open_only"),
        }
    if hook is not None:
        return {
            "url": hook.url,
            "stream": hook.message_stream,
            "auth_username": hook.http_auth_username,
            "headers": "\n".join(f"{h['Name']}: {h['Value']}" for h in hook.http_headers),
            "enabled": {n: bool(hook.triggers.get(n, {}).get("Enabled")) for n in WEBHOOK_TRIGGERS},
            "include_content": {n: bool(hook.triggers.get(n, {}).get("IncludeContent")) for n in ("Bounce", "SpamComplaint")},
            "post_first_open_only": bool(hook.triggers.get("Open", {}).get("PostFirstOpenOnly")),
        }
    return {
        "url": "",
        "stream": DEFAULT_MESSAGE_STREAM,
        "auth_username": "",
        "headers": "",
        "enabled": {n: n in ("Bounce", "Delivery") for n in WEBHOOK_TRIGGERS},
        "include_content": {"Bounce": False, "SpamComplaint": False},
        "post_first_open_only": False,
    }


async def webhooks_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    hooks = await webhooks_service.list_webhooks(session=session, server_id=server.id, stream=None)
    return render(
        request,
        "webhooks.html",
        {
            "identity": identity,
            "server": server,
            "section": "webhooks",
            "hooks": hooks,
            "streams": await sendable_streams(session, server),
            "triggers": WEBHOOK_TRIGGERS,
            "values": values or webhook_values(),
            "error": error,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/webhooks")
async def webhooks(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await webhooks_page(request, session, server, identity)


@router.post("/servers/{server_id}/webhooks")
async def add_webhook(
    request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    async def create() -> Webhook:
        data = webhook_write(form, stream=field(form, "stream", DEFAULT_MESSAGE_STREAM))
        return await webhooks_service.create_webhook(session=session, server=server, data=data, url_guard=settings.webhook_url_guard())

    async def refused(r: Refused) -> Response:
        return await webhooks_page(request, session, r.server, identity, values=webhook_values(form), error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=create,
        done=lambda hook: redirect(server_url(server, f"webhooks/{hook.id}"), notice="webhook-added"),
        refused=refused,
    )


async def webhook_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    webhook_id: int,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    new_secret: webhooks_service.Rotated | None = None,
) -> HTMLResponse:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    deliveries = await webhooks_service.recent_deliveries(session=session, server_id=server.id, hook=hook)
    return render(
        request,
        "webhook.html",
        {
            "identity": identity,
            "server": server,
            "section": "webhooks",
            "hook": hook,
            "deliveries": deliveries,
            "triggers": WEBHOOK_TRIGGERS,
            "test_triggers": webhooks_service.TEST_TRIGGERS,
            "values": values or webhook_values(hook=hook),
            "error": error,
            "notice": notice_of(request),
            "new_secret": new_secret,
            "overlaps": OVERLAPS,
            "rotating": hook.previous_secret_until is not None and hook.previous_secret_until > datetime.now(UTC),
        },
        status=status,
    )


OVERLAPS = {"3600": "1 hour", "86400": "1 day", "604800": "7 days", "0": "none (the old key stops now)"}


@router.get("/servers/{server_id}/webhooks/{webhook_id}")
async def webhook(request: Request, webhook_id: EntityId, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await webhook_page(request, session, server, identity, webhook_id)


@router.post("/servers/{server_id}/webhooks/{webhook_id}")
async def edit_webhook(
    request: Request,
    webhook_id: EntityId,
    server: ServerPage,
    session: Session,
    settings: AppSettings,
    identity: Signed,
    form: CheckedForm,
) -> Response:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)

    async def edit() -> None:
        data = webhook_write(form, stream=None, keep_password=hook.http_auth_password)
        await webhooks_service.edit_webhook(session=session, hook=hook, data=data, url_guard=settings.webhook_url_guard())

    async def refused(r: Refused) -> Response:
        return await webhook_page(
            request, session, r.server, identity, webhook_id, values=webhook_values(form), error=r.message, status=422
        )

    return await submit(
        session=session,
        server=server,
        change=edit,
        done=lambda _: redirect(server_url(server, f"webhooks/{webhook_id}"), notice="saved"),
        refused=refused,
    )


@router.post("/servers/{server_id}/webhooks/{webhook_id}/test")
async def test_webhook(webhook_id: EntityId, server: ServerPage, session: Session, form: CheckedForm) -> Response:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await webhooks_service.send_test(session=session, server=server, hook=hook, trigger=field(form, "trigger", "Bounce"))
    return redirect(server_url(server, f"webhooks/{webhook_id}"), notice="test-queued")


@router.post("/servers/{server_id}/webhooks/{webhook_id}/delete")
async def delete_webhook(webhook_id: EntityId, server: ServerPage, session: Session, form: CheckedForm) -> Response:
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    await webhooks_service.delete_webhook(session=session, hook=hook)
    return redirect(server_url(server, "webhooks"), notice="webhook-deleted")


@router.post("/servers/{server_id}/webhooks/{webhook_id}/secret")
async def rotate_secret(
    request: Request, webhook_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    """A new signing key, shown on the page this once (never in a redirect's URL)."""
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    overlap = field(form, "overlap", "86400")
    if overlap not in OVERLAPS:
        return await webhook_page(
            request, session, server, identity, webhook_id, error="Choose how long the old key keeps signing.", status=422
        )
    rotated = await webhooks_service.rotate_secret(
        session=session, hook=hook, overlap_seconds=int(overlap), server_secret=server.webhook_secret
    )
    return await webhook_page(request, session, server, identity, webhook_id, new_secret=rotated)


def _form_time(form: FormData, name: str) -> datetime | None:
    """A `datetime-local` input, read as UTC (the page says so); None when empty or not a time."""
    try:
        return datetime.fromisoformat(field(form, name)).replace(tzinfo=UTC)
    except ValueError:
        return None


@router.post("/servers/{server_id}/webhooks/{webhook_id}/replay")
async def replay(
    request: Request, webhook_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    """Send one delivery again (its row's button), or every delivery of a time range."""
    hook = await webhooks_service.get_webhook_or_raise(session=session, server_id=server.id, webhook_id=webhook_id)
    delivery = field(form, "delivery_id")

    async def change() -> int:
        return await webhooks_service.replay(
            session=session,
            hook=hook,
            delivery_id=int(delivery) if delivery.isdigit() else None,
            since=_form_time(form, "from"),
            until=_form_time(form, "to"),
        )

    async def refused(r: Refused) -> Response:
        return await webhook_page(request, session, r.server, identity, webhook_id, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=change,
        done=lambda count: redirect(server_url(server, f"webhooks/{webhook_id}"), notice="replay-queued"),
        refused=refused,
    )
