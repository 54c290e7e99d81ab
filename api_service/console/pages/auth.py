"""Signing in and out of the console (named users, or `admin` with the account token)."""

from __future__ import annotations

import uuid
from urllib.parse import unquote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.console import passkeys, repository, service, sso, two_factor
from api_service.console.access import Identity, Pending
from api_service.console.events import audit_event
from api_service.console.rendering import PREFIX, render
from api_service.console.web import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SSO_ERROR_COOKIE,
    CheckedForm,
    SessionIdentity,
    Signed,
    client_ip,
    console_origin,
    field,
    is_secure,
    json_body,
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
    settings: Settings = request.app.state.settings
    response = render(
        request,
        "sign_in.html",
        {
            "form_token": token,
            "next_url": next_url,
            "error": error or unquote(request.cookies.get(SSO_ERROR_COOKIE, ""))[:300] or None,
            "notice": notice_of(request),
            "username": username or "admin",
            "sso": sso.enabled(settings),
            "sso_label": settings.oidc_button_label,
            "sso_only": settings.sso_only,
        },
        status=status,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    response.delete_cookie(SSO_ERROR_COOKIE, path=PREFIX)
    return response


@router.get("")
async def console_home(identity: Signed) -> RedirectResponse:
    return redirect(f"{PREFIX}/servers")


def after_password(pending: Pending | None, next_url: str) -> RedirectResponse:
    """Where a session goes once the password is right: the second factor, its enrolment, or the page asked."""
    if pending is Pending.SECOND_FACTOR:
        return redirect(f"{PREFIX}/sign-in/second-factor?{urlencode({'next': next_url})}")
    if pending is Pending.ENROL:
        return redirect(f"{PREFIX}/account/two-factor")
    return redirect(next_url)


@router.get("/sign-in")
async def sign_in_form(request: Request, session: Session, settings: AppSettings) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    identity = await service.current_identity(session=session, settings=settings, token=request.cookies.get(SESSION_COOKIE))
    if identity is not None:
        return after_password(identity.pending, next_url)
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
        error = result.message or "Wrong user name or password."
        return sign_in_page(request, token=expected, next_url=next_url, username=username, status=401, error=error)
    signed = after_password(result.pending, next_url)
    set_cookie(signed, request, SESSION_COOKIE, result.token, max_age=int(settings.console_session_hours * 3600))
    signed.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return signed


@router.post("/sign-out")
async def sign_out(request: Request, session: Session, form: CheckedForm) -> Response:
    await service.sign_out(session=session, token=request.cookies.get(SESSION_COOKIE))
    response = redirect(f"{PREFIX}/sign-in", notice="signed-out")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=is_secure(request), httponly=True, samesite="lax")
    return response


# --- the second factor -------------------------------------------------------------------------


def _pending(identity: Identity | None) -> Identity:
    if identity is None:  # authorize() has sent this request to the sign-in page already
        raise service.ConsoleUserError("Sign in first.")
    return identity


async def second_factor_page(
    request: Request, session: AsyncSession, identity: Identity, *, next_url: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    user = await repository.get_user(session=session, username=identity.username)
    return render(
        request,
        "second_factor.html",
        {
            "pending": identity,
            "next_url": next_url,
            "has_totp": user is not None and user.totp_enabled_at is not None,
            "has_passkey": bool(await repository.passkeys(session=session, username=identity.username)),
            "error": error,
        },
        status=status,
    )


@router.get("/sign-in/second-factor")
async def second_factor(request: Request, session: Session, identity: SessionIdentity) -> HTMLResponse:
    return await second_factor_page(request, session, _pending(identity), next_url=safe_next(request.query_params.get("next")))


async def _throttled(session: AsyncSession, settings: Settings, identity: Identity, request: Request) -> int | None:
    return await service.two_factor_throttle(session=session, settings=settings, username=identity.username, client_ip=client_ip(request))


@router.post("/sign-in/second-factor")
async def check_second_factor(
    request: Request, session: Session, settings: AppSettings, identity: SessionIdentity, form: CheckedForm
) -> Response:
    pending = _pending(identity)
    next_url = safe_next(field(form, "next"))
    wait = await _throttled(session, settings, pending, request)
    if wait is not None:
        response = await second_factor_page(
            request,
            session,
            pending,
            next_url=next_url,
            status=429,
            error=f"Too many wrong codes. Try again in {-(-wait // 60)} minute(s).",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    method = await two_factor.check_code(session=session, username=pending.username, code=field(form, "code")[:64])
    if method is None:
        await audit_event(session=session, actor=pending.username, action="sign_in.second_factor_failed", client_ip=client_ip(request))
        return await second_factor_page(request, session, pending, next_url=next_url, status=401, error="That code is not right.")
    token = await service.second_factor_passed(
        session=session, settings=settings, identity=pending, client_ip=client_ip(request), method=method
    )
    if token is None:
        return redirect(f"{PREFIX}/sign-in")
    signed = redirect(next_url)
    set_cookie(signed, request, SESSION_COOKIE, token, max_age=int(settings.console_session_hours * 3600))
    return signed


@router.post("/sign-in/second-factor/passkey/options")
async def passkey_options(request: Request, session: Session, settings: AppSettings, identity: SessionIdentity) -> Response:
    pending = _pending(identity)
    if not service.tokens_equal(pending.csrf_token, request.headers.get("X-CSRF-Token")):
        return JSONResponse({"error": "The page expired; reload it."}, status_code=403)
    try:
        options = await passkeys.authentication_options(
            session=session, identity=pending, rp=passkeys.RelyingParty.of(console_origin(request, settings))
        )
    except service.ConsoleUserError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return Response(options, media_type="application/json")


@router.post("/sign-in/second-factor/passkey")
async def use_passkey(request: Request, session: Session, settings: AppSettings, identity: SessionIdentity) -> Response:
    pending = _pending(identity)
    if not service.tokens_equal(pending.csrf_token, request.headers.get("X-CSRF-Token")):
        return JSONResponse({"error": "The page expired; reload it."}, status_code=403)
    wait = await _throttled(session, settings, pending, request)
    if wait is not None:
        return JSONResponse({"error": "Too many tries; wait a little."}, status_code=429, headers={"Retry-After": str(wait)})
    try:
        body = await json_body(request)
        credential = body.get("credential")
        ok = isinstance(credential, dict) and await passkeys.authenticate(
            session=session, identity=pending, rp=passkeys.RelyingParty.of(console_origin(request, settings)), credential=credential
        )
    except service.ConsoleUserError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    if not ok:
        await audit_event(session=session, actor=pending.username, action="sign_in.second_factor_failed", client_ip=client_ip(request))
        return JSONResponse({"error": "That passkey did not sign you in."}, status_code=401)
    token = await service.second_factor_passed(
        session=session, settings=settings, identity=pending, client_ip=client_ip(request), method="passkey"
    )
    if token is None:
        return JSONResponse({"error": "The sign-in expired; start again."}, status_code=401)
    answer = JSONResponse({"next": safe_next(str(body.get("next") or ""))})
    set_cookie(answer, request, SESSION_COOKIE, token, max_age=int(settings.console_session_hours * 3600))
    return answer
