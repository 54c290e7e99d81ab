"""One's own account: the second factor (an authenticator app with recovery codes, passkeys).

While the account requires 2FA and the user has none, these are the only pages they reach."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.console import access, passkeys, repository, service, two_factor
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, SessionIdentity, Signed, client_ip, console_origin, field, json_body, redirect
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.models import ConsoleUser

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

NOTICES = {
    "totp-off": "The authenticator app is turned off.",
    "passkey-added": "The passkey is added: it can be used as your second factor.",
    "passkey-removed": "The passkey is removed.",
}
PAGE = f"{PREFIX}/account/two-factor"


def _identity(identity: access.Identity | None) -> access.Identity:
    if identity is None:  # authorize() has refused this already
        raise service.ConsoleUserError("Sign in first.")
    return identity


async def account_page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    identity: access.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    recovery_codes: list[str] | None = None,
) -> HTMLResponse:
    user: ConsoleUser | None = await repository.get_user(session=session, username=identity.username)
    enrolment = None
    if user is not None and user.totp_enabled_at is None and recovery_codes is None:
        enrolment = await two_factor.start_totp(session=session, username=user.username, label=request.url.hostname or "postgate")
    return render(
        request,
        "account.html",
        {
            "identity": identity,
            "section": "account",
            "user": user,
            "enrolment": enrolment,
            "passkeys": await repository.passkeys(session=session, username=identity.username) if user else [],
            "recovery_left": await repository.unused_recovery_codes(session=session, username=identity.username) if user else 0,
            "recovery_codes": recovery_codes,
            "required": await service.requires_two_factor(session=session),
            "enrolling": identity.pending is access.Pending.ENROL,
            "error": error,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
        status=status,
    )


@router.get("/account")
async def account(identity: Signed) -> Response:
    return redirect(PAGE)


@router.get("/account/two-factor")
async def two_factor_page(request: Request, session: Session, settings: AppSettings, identity: SessionIdentity) -> HTMLResponse:
    return await account_page(request, session, settings, _identity(identity))


async def _enrolled(session: AsyncSession, identity: access.Identity) -> None:
    """A session that had to enrol is fully signed in once a second factor is set up."""
    if identity.pending is access.Pending.ENROL:
        await repository.set_session_state(session=session, token_sha256=identity.session_digest, pending=None, challenge=None)


@router.post("/account/two-factor/totp")
async def confirm_totp(
    request: Request, session: Session, settings: AppSettings, identity: SessionIdentity, form: CheckedForm
) -> HTMLResponse:
    me = _identity(identity)
    try:
        codes = await two_factor.confirm_totp(session=session, username=me.username, code=field(form, "code"), client_ip=client_ip(request))
    except service.ConsoleUserError as exc:
        return await account_page(request, session, settings, me, error=str(exc), status=422)
    await _enrolled(session, me)
    return await account_page(request, session, settings, me, recovery_codes=codes)


@router.post("/account/two-factor/totp/disable")
async def disable_totp(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    if await service.requires_two_factor(session=session) and not await repository.passkeys(session=session, username=identity.username):
        return await account_page(
            request, session, settings, identity, error="The account requires a second factor: add a passkey first.", status=422
        )
    # A stolen session alone must not be enough to remove the second factor.
    if await two_factor.check_code(session=session, username=identity.username, code=field(form, "code")[:64]) is None:
        return await account_page(request, session, settings, identity, error="That code is not right; the app stays on.", status=422)
    try:
        await two_factor.disable_totp(session=session, username=identity.username, actor=identity.username, client_ip=client_ip(request))
    except service.ConsoleUserError as exc:
        return await account_page(request, session, settings, identity, error=str(exc), status=422)
    return redirect(PAGE, notice="totp-off")


@router.post("/account/two-factor/recovery-codes")
async def new_recovery_codes(
    request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm
) -> HTMLResponse:
    codes = await two_factor.replace_recovery_codes(session=session, username=identity.username)
    return await account_page(request, session, settings, identity, recovery_codes=codes)


def _csrf_ok(request: Request, identity: access.Identity) -> bool:
    return service.tokens_equal(identity.csrf_token, request.headers.get("X-CSRF-Token"))


@router.post("/account/two-factor/passkeys/options")
async def passkey_options(request: Request, session: Session, settings: AppSettings, identity: SessionIdentity) -> Response:
    me = _identity(identity)
    if not _csrf_ok(request, me):
        return JSONResponse({"error": "The page expired; reload it."}, status_code=403)
    try:
        options = await passkeys.registration_options(
            session=session, identity=me, rp=passkeys.RelyingParty.of(console_origin(request, settings))
        )
    except service.ConsoleUserError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return Response(options, media_type="application/json")


@router.post("/account/two-factor/passkeys")
async def add_passkey(request: Request, session: Session, settings: AppSettings, identity: SessionIdentity) -> Response:
    me = _identity(identity)
    if not _csrf_ok(request, me):
        return JSONResponse({"error": "The page expired; reload it."}, status_code=403)
    try:
        body = await json_body(request)
        await passkeys.register(
            session=session,
            identity=me,
            rp=passkeys.RelyingParty.of(console_origin(request, settings)),
            credential=body.get("credential") or {},
            name=str(body.get("name") or "Passkey"),
            client_ip=client_ip(request),
        )
    except service.ConsoleUserError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    await _enrolled(session, me)
    return JSONResponse({"next": f"{PAGE}?notice=passkey-added"})


@router.post("/account/two-factor/passkeys/{credential_id}/delete")
async def delete_passkey(request: Request, credential_id: str, session: Session, identity: Signed, form: CheckedForm) -> Response:
    await passkeys.remove(session=session, identity=identity, credential_id=credential_id, client_ip=client_ip(request))
    return redirect(PAGE, notice="passkey-removed")
