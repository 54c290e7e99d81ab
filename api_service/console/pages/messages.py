"""One outbound message: its timeline (events, opens, clicks), headers, bodies, bounces and source."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.bounces import service as bounces_service
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import BounceView, TimelineEntry
from api_service.console.web import (
    RAW_SHOWN_BYTES,
    REMOTE_CONTENT,
    CheckedForm,
    ServerPage,
    Signed,
    html_preview_headers,
    redirect,
    server_url,
)
from api_service.delivery import queue
from api_service.deps import Session, TransactionalRoute
from api_service.messages import service as messages_service
from api_service.models import Message, MessageClick, MessageOpen, Server
from api_service.tracking import service as tracking_service
from shared.constants import MessageEventType

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

TIMELINE_READS = 100  # the newest opens, and the newest clicks, a message page shows


def reader_details(row: MessageOpen | MessageClick) -> list[tuple[str, str]]:
    """Who opened or clicked, as the tracking service recorded it."""
    details = [("Client", row.client_name), ("OS", row.os_name), ("Platform", row.platform)]
    if row.country:
        details.append(("Country", ", ".join(p for p in (row.city, row.region, row.country) if p)))
    # Beyond Postmark: a privacy proxy or a scanner, by the rule that said so (tracking/machines.toml).
    details.append(("Machine", row.machine_reason) if row.machine else ("Reader", "a person"))
    return details


def message_bodies(raw: bytes) -> tuple[str, str, str | None]:
    """(text, html, problem): a message whose MIME cannot be decoded still gets a page."""
    try:
        text, html = messages_service.bodies(raw)
    except (LookupError, ValueError, UnicodeError, AttributeError, KeyError) as exc:
        return "", "", f"The body could not be decoded ({type(exc).__name__}); see the raw source."
    return text, html, None


async def timeline_of(session: AsyncSession, server: Server, message: Message) -> tuple[list[TimelineEntry], int]:
    """The message's life in time order, and how many opens and clicks were left out of it."""
    events = await messages_service.list_events(session=session, message_id=message.id)
    of_message = tracking_service.ActivityFilter(message_id=message.id)
    opens_total, opens = await tracking_service.list_opens(
        session=session, server_id=server.id, filters=of_message, count=TIMELINE_READS, offset=0
    )
    clicks_total, clicks = await tracking_service.list_clicks(
        session=session, server_id=server.id, filters=of_message, count=TIMELINE_READS, offset=0
    )
    timeline = [
        TimelineEntry(
            type="Queued", at=message.created_at, recipient=", ".join(message.recipients), details=[("Source", message.source.upper())]
        )
    ]
    # Opens and clicks come from their own rows, which hold the reader's client, OS and platform.
    timeline += [
        TimelineEntry(
            type=e.type,
            at=e.created_at,
            recipient=e.recipient,
            details=[(str(k), str(v)) for k, v in e.details.items() if v not in ("", None)],
        )
        for e in events
        if e.type not in (MessageEventType.OPENED, MessageEventType.LINK_CLICKED)
    ]
    timeline += [TimelineEntry(type="Opened", at=o.created_at, recipient=o.recipient, details=reader_details(o)) for o in opens]
    timeline += [
        TimelineEntry(
            type="Clicked",
            at=c.created_at,
            recipient=c.recipient,
            details=[("Link", c.original_link), ("In", f"{c.click_location} part"), *reader_details(c)],
        )
        for c in clicks
    ]
    timeline.sort(key=lambda entry: entry.at)
    return timeline, opens_total - len(opens) + clicks_total - len(clicks)


@router.get("/servers/{server_id}/messages/{message_id}")
async def message_page(request: Request, message_id: str, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    timeline, reads_left_out = await timeline_of(session, server, message)
    text, html, problem = message_bodies(message.raw_mime)
    bounces = await bounces_service.list_bounces(
        session=session,
        server_id=server.id,
        filters=bounces_service.BounceFilter(message_id=message.id, message_stream=message.message_stream),
        count=50,
        offset=0,
    )
    return render(
        request,
        "message.html",
        {
            "identity": identity,
            "server": server,
            "section": "activity",
            "message": message,
            "timeline": timeline,
            "headers": messages_service.headers_of(message.raw_mime),
            "text_body": text,
            "has_html": bool(html),
            "has_remote": bool(REMOTE_CONTENT.search(html)),
            "images": request.query_params.get("images") == "1",
            "problem": problem,
            "raw": message.raw_mime[:RAW_SHOWN_BYTES].decode("utf-8", "replace"),
            "raw_truncated": len(message.raw_mime) > RAW_SHOWN_BYTES,
            "bounces": [BounceView.of(row) for row in bounces[1]],
            "reads_left_out": reads_left_out,
        },
    )


@router.post("/servers/{server_id}/messages/{message_id}/cancel")
async def cancel_scheduled(message_id: str, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    """Cancel a scheduled message that has not been released (as `DELETE /messages/outbound/{id}/schedule`)."""
    url = server_url(server, f"messages/{message_id}")

    async def change() -> None:
        message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
        await queue.cancel_scheduled(session=session, message=message)

    async def refused(r: Refused) -> Response:
        return redirect(url, notice="schedule-too-late")

    return await submit(session=session, change=change, done=lambda _: redirect(url, notice="schedule-cancelled"), refused=refused)


@router.get("/servers/{server_id}/messages/{message_id}/html")
async def message_html(request: Request, message_id: str, server: ServerPage, session: Session) -> HTMLResponse:
    """The message's own HTML, for the sandboxed preview frame only: its CSP forbids scripts and remote loads."""
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    _, html, _ = message_bodies(message.raw_mime)
    return HTMLResponse(html, headers=html_preview_headers(images=request.query_params.get("images") == "1"))


@router.get("/servers/{server_id}/messages/{message_id}/raw")
async def message_raw(message_id: str, server: ServerPage, session: Session) -> Response:
    message = await messages_service.get_message_or_raise(session=session, server_id=server.id, message_id=message_id)
    return Response(
        message.raw_mime,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{message.id}.eml"'},
    )
