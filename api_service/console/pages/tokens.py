"""API tokens: a server's tokens and the account tokens (list, create shown once, revoke)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, ServerPage, Signed, field, notice_of, redirect, server_url
from api_service.deps import Session, TransactionalRoute
from api_service.models import Server
from api_service.servers import token_service
from shared.constants import TokenScope

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

BLANK = {"name": "", "scope": "full", "expires": ""}


async def tokens_page(
    request: Request,
    session: AsyncSession,
    identity: access.Identity,
    server: Server | None,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    if server is None:
        rows: list[Any] = list(await token_service.list_account_tokens(session=session))
        scopes = [TokenScope.FULL, TokenScope.READ]
    else:
        rows = list(await token_service.list_server_tokens(session=session, server_id=server.id))
        scopes = list(TokenScope)
    return render(
        request,
        "tokens.html",
        {
            "identity": identity,
            "server": server,
            "section": "tokens" if server else "account-tokens",
            "tokens": rows,
            "scopes": scopes,
            "action": server_url(server, "tokens") if server else f"{PREFIX}/account-tokens",
            "error": error,
            "notice": notice_of(request),
            "values": values or BLANK,
        },
        status=status,
    )


def _values(form: Any) -> dict[str, str]:
    return {"name": field(form, "name"), "scope": field(form, "scope", "full"), "expires": field(form, "expires")}


def _created(request: Request, identity: access.Identity, server: Server | None, created: token_service.CreatedToken) -> Response:
    return render(
        request,
        "token_created.html",
        {
            "identity": identity,
            "server": server,
            "section": "tokens" if server else "account-tokens",
            "row": created.row,
            "token": created.token,
            "back": server_url(server, "tokens") if server else f"{PREFIX}/account-tokens",
        },
        status=201,
    )


@router.get("/servers/{server_id}/tokens")
async def server_tokens(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await tokens_page(request, session, identity, server)


@router.post("/servers/{server_id}/tokens")
async def create_server_token(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    values = _values(form)

    async def create() -> token_service.CreatedToken:
        return await token_service.create_server_token(
            session=session,
            server_id=server.id,
            name=values["name"],
            scope=token_service.parse_scope(values["scope"]),
            expires_at=token_service.parse_expiry(values["expires"]),
        )

    async def refused(r: Refused) -> Response:
        return await tokens_page(request, session, identity, r.server, error=r.message, status=422, values=values)

    return await submit(
        session=session, change=create, done=lambda c: _created(request, identity, server, c), refused=refused, server=server
    )


@router.post("/servers/{server_id}/tokens/revoke")
async def revoke_server_token(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    async def revoke() -> object:
        return await token_service.revoke_server_token(session=session, server_id=server.id, name=field(form, "name"))

    async def refused(r: Refused) -> Response:
        return await tokens_page(request, session, identity, r.server, error=r.message, status=r.status)

    return await submit(
        session=session,
        change=revoke,
        done=lambda _: redirect(server_url(server, "tokens"), notice="token-revoked"),
        refused=refused,
        server=server,
    )


@router.get("/account-tokens")
async def account_tokens(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await tokens_page(request, session, identity, None)


@router.post("/account-tokens")
async def create_account_token(request: Request, session: Session, identity: Signed, form: CheckedForm) -> Response:
    values = _values(form)

    async def create() -> token_service.CreatedToken:
        return await token_service.create_account_token(
            session=session,
            name=values["name"],
            scope=token_service.parse_scope(values["scope"]),
            expires_at=token_service.parse_expiry(values["expires"]),
        )

    async def refused(r: Refused) -> Response:
        return await tokens_page(request, session, identity, None, error=r.message, status=422, values=values)

    return await submit(session=session, change=create, done=lambda c: _created(request, identity, None, c), refused=refused)


@router.post("/account-tokens/revoke")
async def revoke_account_token(request: Request, session: Session, identity: Signed, form: CheckedForm) -> Response:
    async def revoke() -> object:
        return await token_service.revoke_account_token(session=session, name=field(form, "name"))

    async def refused(r: Refused) -> Response:
        return await tokens_page(request, session, identity, None, error=r.message, status=r.status)

    return await submit(
        session=session, change=revoke, done=lambda _: redirect(f"{PREFIX}/account-tokens", notice="token-revoked"), refused=refused
    )
