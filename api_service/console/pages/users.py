"""The account's users, for Owners: the list, invitations, roles, disabling, and the 2FA policy.
Also the invitation link an invitee follows to choose a password."""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api_service.console import access, service
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, Signed, checked, client_ip, field, notice_of, redirect
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.models import AccountRole, ServerRole
from api_service.servers import service as servers_service

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

ROLE_CHOICES = (
    ("owner", "Owner: everything, users included"),
    ("admin", "Admin: every server and setting"),
    ("editor", "Editor of the servers ticked"),
    ("viewer", "Viewer of the servers ticked"),
)
NOTICES = {
    "invited": "The invitation is mailed.",
    "role": "The role is changed; it applies from the user's next click.",
    "disabled": "The user is disabled and signed out everywhere.",
    "enabled": "The user can sign in again.",
    "policy": "The two-factor rule is saved.",
}


def role_of(form: FormData) -> tuple[AccountRole | ServerRole, list[int]]:
    role = service.parse_role(field(form, "role"))
    servers = [int(v) for v in form.getlist("server") if isinstance(v, str) and v.isdigit() and len(v) < 19]
    return role, servers


async def users_page(
    request: Request, session: AsyncSession, identity: access.Identity, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    users, roles, invitations = await service.users_overview(session=session)
    _, servers = await servers_service.list_servers(session=session, count=500, offset=0, name=None)
    return render(
        request,
        "users.html",
        {
            "identity": identity,
            "section": "users",
            "users": users,
            "roles": roles,
            "invitations": invitations,
            "servers": servers,
            "server_names": {s.id: s.name for s in servers},
            "role_choices": ROLE_CHOICES,
            "require_two_factor": await service.requires_two_factor(session=session),
            "error": error,
            "notice": NOTICES.get(request.query_params.get("notice", "")) or notice_of(request),
        },
        status=status,
    )


@router.get("/users")
async def users(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await users_page(request, session, identity)


async def _change(request: Request, session: AsyncSession, identity: access.Identity, change: Awaitable[object], notice: str) -> Response:
    """Run a user change; a refusal rolls back and shows the page again with the reason."""
    try:
        await change
    except service.ConsoleUserError as exc:
        await session.rollback()
        return await users_page(request, session, identity, error=str(exc), status=422)
    return redirect(f"{PREFIX}/users", notice=notice)


@router.post("/users/invite")
async def invite(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    try:
        role, servers = role_of(form)
    except service.ConsoleUserError as exc:
        return await users_page(request, session, identity, error=str(exc), status=422)
    change = service.invite_user(
        session=session,
        settings=settings,
        username=field(form, "username"),
        email=field(form, "email"),
        role=role,
        server_ids=servers,
        can_read_bodies=checked(form, "bodies"),
        actor=identity.username,
        client_ip=client_ip(request),
    )
    return await _change(request, session, identity, change, "invited")


@router.post("/users/policy")
async def policy(request: Request, session: Session, identity: Signed, form: CheckedForm) -> Response:
    change = service.set_two_factor_policy(
        session=session, required=checked(form, "require_two_factor"), actor=identity.username, client_ip=client_ip(request)
    )
    return await _change(request, session, identity, change, "policy")


@router.post("/users/{username}/role")
async def set_role(
    request: Request, username: str, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    try:
        role, servers = role_of(form)
    except service.ConsoleUserError as exc:
        return await users_page(request, session, identity, error=str(exc), status=422)
    change = service.set_role(
        session=session,
        settings=settings,
        username=username,
        role=role,
        server_ids=servers,
        can_read_bodies=checked(form, "bodies"),
        actor=identity.username,
        client_ip=client_ip(request),
    )
    return await _change(request, session, identity, change, "role")


@router.post("/users/{username}/invite")
async def reinvite(
    request: Request, username: str, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    change = service.reinvite(session=session, settings=settings, username=username, actor=identity.username, client_ip=client_ip(request))
    return await _change(request, session, identity, change, "invited")


@router.post("/users/{username}/disable")
async def disable(
    request: Request, username: str, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> Response:
    change = service.set_disabled(
        session=session, settings=settings, username=username, disabled=True, actor=identity.username, client_ip=client_ip(request)
    )
    return await _change(request, session, identity, change, "disabled")


@router.post("/users/{username}/enable")
async def enable(request: Request, username: str, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    change = service.set_disabled(
        session=session, settings=settings, username=username, disabled=False, actor=identity.username, client_ip=client_ip(request)
    )
    return await _change(request, session, identity, change, "enabled")


# --- the invitee's side ------------------------------------------------------------------------


def invitation_page(request: Request, *, username: str | None, error: str | None = None, status: int = 200) -> HTMLResponse:
    return render(request, "invitation.html", {"invitee": username, "error": error}, status=status)


@router.get("/invitations/{token}")
async def invitation(request: Request, token: str, session: Session) -> HTMLResponse:
    user = await service.invitation_user(session=session, token=token)
    if user is None:
        return invitation_page(request, username=None, status=404)
    return invitation_page(request, username=user.username)


@router.post("/invitations/{token}")
async def accept_invitation(request: Request, token: str, session: Session) -> Response:
    # No session CSRF token yet: the link's own random token is what an attacker cannot know.
    form = await request.form()
    password = field(form, "password")
    user = await service.invitation_user(session=session, token=token)
    if user is None:
        return invitation_page(request, username=None, status=404)
    if password != field(form, "password_again"):
        return invitation_page(request, username=user.username, error="The two passwords differ.", status=422)
    try:
        await service.accept_invitation(session=session, token=token, password=password, client_ip=client_ip(request))
    except service.ConsoleUserError as exc:
        return invitation_page(request, username=user.username, error=str(exc), status=422)
    return redirect(f"{PREFIX}/sign-in?next={PREFIX}/servers", notice="password-set")
