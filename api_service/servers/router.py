"""`/server` with a server token; `/servers` with the account token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.core.deps import AppSettings, Session, TransactionalRoute
from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.models import Server as ServerRow
from api_service.servers import service
from api_service.servers.deps import AccountAuth, CurrentServer
from shared.constants import SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.servers import Server, ServerCreate, ServerEdit, ServerList, SmtpConnectionInfo

router = APIRouter(route_class=TransactionalRoute, tags=["Servers"])

MASK = "********-****-****-****-********"


def to_wire(server: ServerRow, *, tokens: list[str], settings: Settings) -> Server:
    base = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    # The SMTP credentials are the token itself, when this response may show it.
    shown = next((t for t in tokens if not t.startswith(MASK)), "<server API token>")
    return Server(
        ID=server.id,
        Name=server.name,
        ApiTokens=tokens,
        ServerLink=f"{base.rstrip('/')}/servers/{server.id}",
        Color=server.color,
        SmtpApiActivated=server.smtp_api_activated,
        RawEmailEnabled=server.raw_email_enabled,
        DeliveryType=server.delivery_type,
        InboundAddress=f"{server.inbound_hash}@{settings.inbound_domain}",
        InboundHookUrl=server.inbound_hook_url,
        BounceHookUrl=server.bounce_hook_url,
        OpenHookUrl=server.open_hook_url,
        DeliveryHookUrl=server.delivery_hook_url,
        ClickHookUrl=server.click_hook_url,
        PostFirstOpenOnly=server.post_first_open_only,
        InboundDomain=server.inbound_domain,
        InboundHash=server.inbound_hash,
        InboundSpamThreshold=server.inbound_spam_threshold,
        TrackOpens=server.track_opens,
        TrackLinks=server.track_links,
        IncludeBounceContentInHook=server.include_bounce_content_in_hook,
        EnableSmtpApiErrorHooks=server.enable_smtp_api_error_hooks,
        WebhookSecret=server.webhook_secret,
        RetentionDays=server.retention_days or settings.retention_days,
        SmtpConnection=SmtpConnectionInfo(
            Host=settings.smtp_public_host or settings.smtp_host,
            Ports=[settings.smtp_port],
            Username=shown,
            Password=shown,
            AuthMechanisms=["PLAIN", "LOGIN", "CRAM-MD5"],
        ),
    )


async def masked_tokens(*, session: AsyncSession, server: ServerRow, known: str = "") -> list[str]:
    hints = (await service.token_hints(session=session, server_ids=[server.id]))[server.id]
    return [known if known and known.lower().endswith(h) else f"{MASK}{h}" for h in hints]


SERVER_CODES = "ErrorCodes 602 InboundDomain used by another server, 603 name exists, 606 invalid hook URL or not a public address, 607 color, 608 name, 609 no data, 611 spam threshold, 612 TrackLinks, 613 DeliveryType, 403 RetentionDays out of 7-365 (or set with a server token)"
ERRORS = error_responses(invalid=SERVER_CODES)
ACCOUNT_ERRORS = error_responses(invalid=f"{SERVER_CODES}, 600 invalid query", not_found="ErrorCode 600: no such server", account=True)


@router.get("/server", response_model=Server, responses=ERRORS)
async def get_current_server(request: Request, server: CurrentServer, session: Session, settings: AppSettings) -> Server:
    """Get the settings of the server whose token is used."""
    tokens = await masked_tokens(session=session, server=server, known=request.headers.get(SERVER_TOKEN_HEADER, ""))
    return to_wire(server, tokens=tokens, settings=settings)


@router.put("/server", response_model=Server, responses=ERRORS)
async def edit_current_server(
    request: Request, server: CurrentServer, session: Session, settings: AppSettings, data: Annotated[ServerEdit, Body()]
) -> Server:
    """Edit the settings of the server whose token is used."""
    await service.edit_server(session=session, server=server, data=data, url_guard=settings.webhook_url_guard(), account=False)
    tokens = await masked_tokens(session=session, server=server, known=request.headers.get(SERVER_TOKEN_HEADER, ""))
    return to_wire(server, tokens=tokens, settings=settings)


@router.get("/servers", response_model=ServerList, responses=ACCOUNT_ERRORS, dependencies=[AccountAuth])
async def list_servers(session: Session, settings: AppSettings, paging: Paging, name: Annotated[str | None, Query()] = None) -> ServerList:
    """List servers; `name` filters by substring."""
    total, servers = await service.list_servers(session=session, count=paging.count, offset=paging.offset, name=name)
    hints = await service.token_hints(session=session, server_ids=[s.id for s in servers])
    return ServerList(
        TotalCount=total,
        Servers=[to_wire(s, tokens=[f"{MASK}{h}" for h in hints[s.id]], settings=settings) for s in servers],
    )


@router.post("/servers", response_model=Server, responses=ACCOUNT_ERRORS, dependencies=[AccountAuth])
async def create_server(session: Session, settings: AppSettings, data: Annotated[ServerCreate, Body()]) -> Server:
    """Create a server. Its API token is returned in full only in this response."""
    created = await service.create_server(session=session, data=data, url_guard=settings.webhook_url_guard())
    return to_wire(created.server, tokens=[created.token], settings=settings)


@router.get("/servers/{server_id}", response_model=Server, responses=ACCOUNT_ERRORS, dependencies=[AccountAuth])
async def get_server(server_id: EntityId, session: Session, settings: AppSettings) -> Server:
    """Get a server by ID."""
    server = await service.get_server_or_raise(session=session, server_id=server_id)
    return to_wire(server, tokens=await masked_tokens(session=session, server=server), settings=settings)


@router.put("/servers/{server_id}", response_model=Server, responses=ACCOUNT_ERRORS, dependencies=[AccountAuth])
async def edit_server(server_id: EntityId, session: Session, settings: AppSettings, data: Annotated[ServerEdit, Body()]) -> Server:
    """Edit a server by ID."""
    server = await service.get_server_or_raise(session=session, server_id=server_id)
    await service.edit_server(session=session, server=server, data=data, url_guard=settings.webhook_url_guard(), account=True)
    return to_wire(server, tokens=await masked_tokens(session=session, server=server), settings=settings)


@router.delete("/servers/{server_id}", response_model=ErrorResponse, responses=ACCOUNT_ERRORS, dependencies=[AccountAuth])
async def delete_server(server_id: EntityId, session: Session) -> ErrorResponse:
    """Delete a server with all its messages, bounces and tokens."""
    name = await service.delete_server(session=session, server_id=server_id)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Server {name} removed.")
