"""`/server` with a server token; `/servers` with the account token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.errors import error_responses
from api_service.core.paging import EntityId, Paging
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.models import Server as ServerRow
from api_service.servers import service
from api_service.servers.deps import AccountAuth, CurrentServer
from api_service.servers.views import MASK, to_wire
from shared.constants import SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.servers import Server, ServerCreate, ServerEdit, ServerList

router = APIRouter(route_class=TransactionalRoute, tags=["Servers"])


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
