"""Single sign-on pages: off to the OpenID Connect provider, and back with a code (see console/sso.py)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api_service.console import service, sso
from api_service.console.rendering import PREFIX
from api_service.console.web import SESSION_COOKIE, SSO_ERROR_COOKIE, client_ip, console_origin, redirect, safe_next, set_cookie
from api_service.deps import AppSettings, Session, TransactionalRoute

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

SSO_COOKIE = "postgate_console_sso"


def _back_to_sign_in(request: Request, message: str) -> Response:
    # The reason travels in a short-lived cookie, not in the URL: a link cannot put words on the page.
    response = redirect(f"{PREFIX}/sign-in")
    set_cookie(response, request, SSO_ERROR_COOKIE, quote(message[:300]), max_age=60)
    response.delete_cookie(SSO_COOKIE, path=PREFIX)
    return response


@router.get("/sso/start")
async def start(request: Request, session: Session, settings: AppSettings) -> Response:
    if not sso.enabled(settings):
        return _back_to_sign_in(request, "Single sign-on is not set up (OIDC_ISSUER, OIDC_CLIENT_ID).")
    try:
        url, state = await sso.start(
            session=session,
            settings=settings,
            origin=console_origin(request, settings),
            next_url=safe_next(request.query_params.get("next")),
        )
    except sso.SsoError as exc:
        return _back_to_sign_in(request, str(exc))
    response = redirect(url)
    # Binds the sign-on to this browser: a callback URL alone (say, sent to a victim) does not sign in.
    set_cookie(response, request, SSO_COOKIE, state, max_age=sso.LOGIN_MINUTES * 60)
    return response


@router.get("/sso/callback")
async def callback(request: Request, session: Session, settings: AppSettings) -> Response:
    params = request.query_params
    state = params.get("state", "")
    if not sso.enabled(settings):
        return _back_to_sign_in(request, "Single sign-on is not set up.")
    if params.get("error"):
        # Only the error's code: its description is text anyone could put in a link.
        code = "".join(c for c in params["error"][:40] if c.isalnum() or c == "_")
        return _back_to_sign_in(request, f"The identity provider refused the sign-in ({code}).")
    if not service.tokens_equal(request.cookies.get(SSO_COOKIE, ""), state):
        return _back_to_sign_in(request, "This sign-on was started in another browser or expired. Start again.")
    try:
        token, next_url = await sso.finish(
            session=session,
            settings=settings,
            origin=console_origin(request, settings),
            state=state,
            code=params.get("code", "")[:2048],
            client_ip=client_ip(request),
        )
    except sso.SsoError as exc:
        return _back_to_sign_in(request, str(exc))
    response = redirect(safe_next(next_url))
    set_cookie(response, request, SESSION_COOKIE, token, max_age=int(settings.console_session_hours * 3600))
    response.delete_cookie(SSO_COOKIE, path=PREFIX)
    return response
