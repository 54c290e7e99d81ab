"""Signing in and out of the console (named users, or `admin` with the account token)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api_service.console import service
from api_service.console.rendering import PREFIX, render
from api_service.console.web import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CheckedForm,
    Signed,
    client_ip,
    field,
    is_secure,
    notice_of,
    redirect,
    safe_next,
    set_cookie,
)
from api_service.deps import AppSettings, Session, TransactionalRoute

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


def sign_in_page(
    request: Request, *, token: str, next_url: str, error: str | None = None, status: int = 200, username: str = ""
) -> HTMLResponse:
    response = render(
        request,
        "sign_in.html",
        {"form_token": token, "next_url": next_url, "error": error, "notice": notice_of(request), "username": username or "admin"},
        status=status,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.get("")
async def console_home(identity: Signed) -> RedirectResponse:
    return redirect(f"{PREFIX}/servers")


@router.get("/sign-in")
async def sign_in_form(request: Request, session: Session, settings: AppSettings) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if await service.current_identity(session=session, settings=settings, token=request.cookies.get(SESSION_COOKIE)):
        return redirect(next_url)
    token = request.cookies.get(SIGN_IN_COOKIE) or uuid.uuid4().hex
    return sign_in_page(request, token=token, next_url=next_url)


@router.post("/sign-in")
async def sign_in(request: Request, session: Session, settings: AppSettings) -> Response:
    form = await request.form()
    next_url = safe_next(field(form, "next"))
    username = field(form, "username")[:64]
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not service.tokens_equal(expected, field(form, "csrf_token")):
        return sign_in_page(
            request,
            token=uuid.uuid4().hex,
            next_url=next_url,
            username=username,
            status=400,
            error="The sign-in form expired (or cookies are off). Please try again.",
        )
    result = await service.sign_in(
        session=session, settings=settings, username=username, password=field(form, "password"), client_ip=client_ip(request)
    )
    if result.retry_after is not None:
        minutes = -(-result.retry_after // 60)
        response = sign_in_page(
            request,
            token=expected,
            next_url=next_url,
            username=username,
            status=429,
            error=f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.token is None:
        return sign_in_page(request, token=expected, next_url=next_url, username=username, status=401, error="Wrong user name or password.")
    signed = redirect(next_url)
    set_cookie(signed, request, SESSION_COOKIE, result.token, max_age=int(settings.console_session_hours * 3600))
    signed.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return signed


@router.post("/sign-out")
async def sign_out(request: Request, session: Session, form: CheckedForm) -> Response:
    await service.sign_out(session=session, token=request.cookies.get(SESSION_COOKIE))
    response = redirect(f"{PREFIX}/sign-in", notice="signed-out")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=is_secure(request), httponly=True, samesite="lax")
    return response
