"""A server's received mail: search, a message's parsed fields, its HTML in the sandboxed frame, its
hook attempts, Bypass and Retry.

Every read and change goes through the inbound service (and the webhooks service for the hook
attempts), so Bypass and Retry do here exactly what `PUT /messages/inbound/{id}/bypass` and
`…/retry` do. A received message is hostile input: its fields are shown from the payload the inbound
parser already made (escaped like any text), and its HTML body only through its own route, with the
message preview's Content-Security-Policy, in an `<iframe sandbox>`, as the outbound message page does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import Pager, SearchQuery
from api_service.console.web import (
    NOTICES,
    PAGE_SIZE,
    RAW_SHOWN_BYTES,
    REMOTE_CONTENT,
    CheckedForm,
    ServerPage,
    Signed,
    html_preview_headers,
    page_number,
    redirect,
    search_dates,
    server_url,
)
from api_service.core.paging import Page
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.inbound import service as inbound_service
from api_service.inbound.views import details_of
from api_service.models import InboundMessage, Server
from api_service.webhooks import service as webhooks_service
from shared.constants import InboundStatus

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

SEARCH_KEYS = ("fromemail", "recipient", "subject", "mailboxhash", "tag", "status", "fromdate", "todate")
HOOK_ATTEMPTS_SHOWN = 20
INBOUND_NOTICES = {
    "inbound-bypassed": "The message bypassed the inbound rules and is queued for the InboundHookUrl; the worker posts it within seconds.",
    "inbound-bypassed-processed": "The message bypassed the inbound rules. The server has no InboundHookUrl, so it is Processed.",
    "inbound-retried": "The message is queued for the InboundHookUrl again, with a new round of retries.",
    "inbound-retried-processed": "The server has no InboundHookUrl now, so the message is Processed without a POST.",
    "rule-added": "The rule is added: mail from that sender is blocked from now on.",
    "rule-deleted": "The rule is deleted: mail from that sender is posted again.",
}


def notice(request: Request) -> str | None:
    key = request.query_params.get("notice", "")
    return INBOUND_NOTICES.get(key) or NOTICES.get(key)


def inbound_url(server: Server, rest: str = "") -> str:
    return server_url(server, "inbound" + (f"/{rest}" if rest else ""))


def inbound_address(server: Server, settings: Settings) -> str:
    """`InboundAddress`, as `GET /server` shows it."""
    return f"{server.inbound_hash}@{settings.inbound_domain}"


# --- received messages -----------------------------------------------------------------------------


def inbound_query(request: Request) -> SearchQuery[inbound_service.InboundFilter]:
    values = {k: request.query_params.get(k, "").strip()[:200] for k in SEARCH_KEYS}
    status = next((s for s in InboundStatus if s.value.lower() == values["status"].lower()), None)
    from_date, to_date, error = search_dates(values)
    filters = inbound_service.InboundFilter(
        recipient=values["recipient"] or None,
        from_email=values["fromemail"] or None,
        tag=values["tag"] or None,
        status=status,
        subject=values["subject"] or None,
        mailbox_hash=values["mailboxhash"] or None,
        from_date=from_date,
        to_date=to_date,
    )
    return SearchQuery(values=values, filters=filters, error=error)


async def inbound_context(request: Request, session: AsyncSession, settings: Settings, server: Server) -> dict[str, Any]:
    query = inbound_query(request)
    page = page_number(request)
    total, messages = await inbound_service.list_messages(
        session=session, server_id=server.id, filters=query.filters, page=Page(count=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    )
    shown = {k: v for k, v in query.values.items() if v}
    return {
        "server": server,
        "section": "inbound",
        "messages": messages,
        "pager": Pager(page=page, total=total, size=PAGE_SIZE, query=shown),
        "values": query.values,
        "error": query.error,
        "statuses": [s.value for s in InboundStatus],
        "address": inbound_address(server, settings),
        "rows_url": inbound_url(server, "rows") + ("?" + urlencode(shown) if shown else ""),
        "live": page == 1,
    }


@router.get("/servers/{server_id}/inbound")
async def inbound(request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    context = await inbound_context(request, session, settings, server)
    return render(request, "inbound.html", {"identity": identity, **context}, status=422 if context["error"] else 200)


@router.get("/servers/{server_id}/inbound/rows")
async def inbound_rows(request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    """The table body alone, for htmx's live refresh."""
    return render(request, "_inbound_rows.html", {"identity": identity, **await inbound_context(request, session, settings, server)})


# --- one received message --------------------------------------------------------------------------


async def message_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    message_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    message = await inbound_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    details = details_of(message)
    attempts = await webhooks_service.deliveries_about(
        session=session,
        server_id=server.id,
        record_type=inbound_service.INBOUND_RECORD_TYPE,
        origin_id=str(message.id),
        limit=HOOK_ATTEMPTS_SHOWN,
    )
    return render(
        request,
        "inbound_message.html",
        {
            "identity": identity,
            "server": server,
            "section": "inbound",
            "message": message,
            "details": details,
            "attempts": attempts,
            "can_bypass": message.status == InboundStatus.BLOCKED,
            "can_retry": message.status == InboundStatus.FAILED,
            "has_html": bool(details.HtmlBody),
            "has_remote": bool(REMOTE_CONTENT.search(details.HtmlBody)),
            "images": request.query_params.get("images") == "1",
            "raw": message.raw_mime[:RAW_SHOWN_BYTES].decode("utf-8", "replace"),
            "raw_truncated": len(message.raw_mime) > RAW_SHOWN_BYTES,
            "error": error,
            "notice": notice(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/inbound/{message_id}")
async def inbound_message(request: Request, message_id: str, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await message_page(request, session, server, identity, message_id)


@router.get("/servers/{server_id}/inbound/{message_id}/html")
async def inbound_message_html(request: Request, message_id: str, server: ServerPage, session: Session) -> HTMLResponse:
    """The received HTML body, for the sandboxed preview frame only: its CSP forbids scripts and remote loads."""
    message = await inbound_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    html = str(message.details.get("HtmlBody", ""))
    return HTMLResponse(html, headers=html_preview_headers(images=request.query_params.get("images") == "1"))


@router.get("/servers/{server_id}/inbound/{message_id}/raw")
async def inbound_message_raw(message_id: str, server: ServerPage, session: Session) -> Response:
    message = await inbound_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    return Response(
        message.raw_mime,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="inbound-{message.id}.eml"'},
    )


async def resend(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    message_id: str,
    *,
    settings: Settings,
    bypass: bool,
) -> Response:
    """Bypass the rules for a Blocked message, or retry a Failed one; a refusal re-renders the message."""

    async def change() -> InboundMessage:
        act = inbound_service.bypass if bypass else inbound_service.retry
        return await act(session=session, settings=settings, server=server, message_id=message_id)

    def done(message: InboundMessage) -> Response:
        prefix = "inbound-bypassed" if bypass else "inbound-retried"
        return redirect(inbound_url(server, str(message.id)), notice=prefix if server.inbound_hook_url else f"{prefix}-processed")

    async def refused(r: Refused) -> Response:
        return await message_page(request, session, r.server, identity, message_id, error=r.message, status=r.status)

    return await submit(session=session, server=server, change=change, done=done, refused=refused)


@router.post("/servers/{server_id}/inbound/{message_id}/bypass")
async def bypass_message(
    request: Request, message_id: str, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    return await resend(request, session, server, identity, message_id, settings=settings, bypass=True)


@router.post("/servers/{server_id}/inbound/{message_id}/retry")
async def retry_message(
    request: Request, message_id: str, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    return await resend(request, session, server, identity, message_id, settings=settings, bypass=False)
