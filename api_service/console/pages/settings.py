"""A server's settings: general, tracking, hooks and inbound cards, SMTP on/off, and the DNS it needs."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_service.config import Settings
from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.views import DnsRecord, InboundDns
from api_service.console.web import CheckedForm, ServerPage, Signed, checked, field, notice_of, redirect, server_url
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.servers import service as servers_service
from api_service.servers.views import MASK, to_wire
from shared.constants import SERVER_COLORS, ErrorCode, TrackLinks
from shared.schemas.servers import ServerEdit

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

HOOK_FIELDS = (
    ("BounceHookUrl", "bounce_hook_url", "Bounce"),
    ("DeliveryHookUrl", "delivery_hook_url", "Delivery"),
    ("OpenHookUrl", "open_hook_url", "Open"),
    ("ClickHookUrl", "click_hook_url", "Click"),
)
SPAM_THRESHOLDS = tuple(range(0, 31, 5))
SETTINGS_CARDS = ("general", "tracking", "hooks", "inbound")
MX_PRIORITY = 10


def tls_summary(settings: Settings) -> str:
    parts = []
    if settings.smtp_tls_cert:
        parts.append("STARTTLS on every port")
    if settings.smtp_tls_port:
        parts.append(f"implicit TLS on port {settings.smtp_tls_port}")
    return ", ".join(parts) or "Not configured: set SMTP_TLS_CERT and SMTP_TLS_KEY on the gateway to offer STARTTLS"


def inbound_dns(*, inbound_domain: str, server_domain: str, mx_host: str) -> InboundDns:
    """An MX record for INBOUND_DOMAIN (and for the server's own InboundDomain) naming the host of the
    MX listener. An MX must name a host, never an address (RFC 5321 section 5.1), so when that host is
    configured as an IP address the records name `mx.<INBOUND_DOMAIN>` and add its A or AAAA record."""
    target = mx_host.strip().rstrip(".")
    warnings = []
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(target.strip("[]"))
    if address is not None:
        target = f"mx.{inbound_domain}"
        if not address.is_global:
            warnings.append(
                f"The listener's host is {address}, which other mail servers cannot reach: set SMTP_PUBLIC_HOST "
                "to the public name of the host that runs the gateway."
            )
    elif target == "localhost" or target.endswith(".localhost"):
        warnings.append(f"The listener's host is {target}: set SMTP_PUBLIC_HOST to the public name of the host that runs the gateway.")
    if inbound_domain == "localhost" or inbound_domain.endswith(".localhost"):
        warnings.append(f"INBOUND_DOMAIN is {inbound_domain}, which cannot be published: set it to a domain whose DNS you control.")
    records = [DnsRecord("Inbound addresses", "MX", inbound_domain, target, MX_PRIORITY)]
    if server_domain:
        records.append(DnsRecord("This server's inbound domain", "MX", server_domain, target, MX_PRIORITY))
    if address is not None:
        records.append(DnsRecord("The listener's host", "AAAA" if address.version == 6 else "A", target, str(address)))
    return InboundDns(records=records, warnings=warnings)


async def settings_page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    server: Server,
    identity: access.Identity,
    *,
    error: str | None = None,
    error_card: str = "",
    status: int = 200,
) -> HTMLResponse:
    hints = (await servers_service.token_hints(session=session, server_ids=[server.id]))[server.id]
    wire = to_wire(server, tokens=[f"{MASK}{h}" for h in hints], settings=settings)
    connection = wire.SmtpConnection
    assert connection is not None  # noqa: S101 - to_wire always describes the SMTP connection
    extra = [int(p) for p in re.split(r"[\s,]+", settings.smtp_extra_ports) if p.isdigit()]
    ports = [*connection.Ports, *[p for p in extra if p not in connection.Ports]]
    return render(
        request,
        "settings.html",
        {
            "identity": identity,
            "server": server,
            "section": "settings",
            "wire": wire,
            "smtp": connection,
            "smtp_ports": ports,
            "token_hints": hints,
            "tls": tls_summary(settings),
            "colors": SERVER_COLORS,
            "track_links": [t.value for t in TrackLinks],
            "hook_fields": HOOK_FIELDS,
            "inbound_address": wire.InboundAddress,
            "inbound_dns": inbound_dns(
                inbound_domain=settings.inbound_domain, server_domain=server.inbound_domain, mx_host=connection.Host
            ),
            "spam_thresholds": SPAM_THRESHOLDS,
            "error": error,
            "error_card": error_card,
            "notice": notice_of(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/settings")
async def server_settings(request: Request, server: ServerPage, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    return await settings_page(request, session, settings, server, identity)


def spam_threshold(value: str) -> int:
    try:
        return int(value.strip() or "0")
    except ValueError:
        raise PostmarkError(ErrorCode.INVALID_SPAM_THRESHOLD, "InboundSpamThreshold must be a number: 0 (off), or 5 to 30.") from None


def settings_edit(card: str, form: FormData) -> ServerEdit:
    if card == "general":
        return ServerEdit(Name=field(form, "name"), Color=field(form, "color"))
    if card == "tracking":
        return ServerEdit(TrackOpens=checked(form, "track_opens"), TrackLinks=field(form, "track_links", "None"))
    if card == "inbound":
        return ServerEdit(
            InboundDomain=field(form, "InboundDomain"),
            InboundHookUrl=field(form, "InboundHookUrl"),
            InboundSpamThreshold=spam_threshold(field(form, "InboundSpamThreshold")),
            RawEmailEnabled=checked(form, "RawEmailEnabled"),
        )
    edit: dict[str, Any] = {name: field(form, name) for name, _, _ in HOOK_FIELDS}
    edit |= {
        "IncludeBounceContentInHook": checked(form, "IncludeBounceContentInHook"),
        "EnableSmtpApiErrorHooks": checked(form, "EnableSmtpApiErrorHooks"),
        "PostFirstOpenOnly": checked(form, "PostFirstOpenOnly"),
    }
    return ServerEdit(**edit)


@router.post("/servers/{server_id}/settings/smtp")
async def toggle_smtp(server: ServerPage, session: Session, settings: AppSettings, form: CheckedForm) -> Response:
    enabled = field(form, "enabled") == "true"
    await servers_service.edit_server(
        session=session, server=server, data=ServerEdit(SmtpApiActivated=enabled), url_guard=settings.webhook_url_guard()
    )
    return redirect(server_url(server, "settings#smtp"), notice="smtp-on" if enabled else "smtp-off")


@router.post("/servers/{server_id}/settings/{card}")
async def save_settings(
    request: Request, card: str, server: ServerPage, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    if card not in SETTINGS_CARDS:
        raise StarletteHTTPException(404)

    async def save() -> Server:
        # settings_edit is inside the change: a spam threshold that is not a number is the domain's refusal too.
        data = settings_edit(card, form)
        return await servers_service.edit_server(session=session, server=server, data=data, url_guard=settings.webhook_url_guard())

    async def refused(r: Refused) -> Response:
        return await settings_page(request, session, settings, r.server, identity, error=r.message, error_card=card, status=422)

    return await submit(
        session=session,
        server=server,
        change=save,
        done=lambda _: redirect(server_url(server, f"settings#{card}"), notice="saved"),
        refused=refused,
    )
