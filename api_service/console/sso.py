"""Console single sign-on with any OpenID Connect provider (Keycloak, Google, Entra ID, Authentik …).

The authorization code flow with PKCE (S256, `authlib`), a random `state` bound to the browser by a
cookie and kept (hashed) in `console_oidc_logins` for ten minutes, and a `nonce`; the ID token is
checked with `joserfc` against the provider's JWKS: signature, issuer, audience (and `azp`), expiry
and nonce. The provider's discovery document and keys are read over HTTPS and kept for a while.

Roles come from the ID token's claims through OIDC_ROLE_MAP at every sign-in, so the provider stays
the one place to change them; a user the map gives no role is refused. A first sign-in makes the
console user (or links the user of the same verified email address).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.console import repository
from api_service.console.events import audit_event
from api_service.console.service import ADMIN_USERNAME, ConsoleUserError, clean_username, sha256, start_session, user_fingerprint
from api_service.models import AccountRole, ConsoleOidcLogin, ConsoleUser, ServerRole

CALLBACK_PATH = "/console/sso/callback"
LOGIN_MINUTES = 10
CACHE_SECONDS = 300
HTTP_TIMEOUT = httpx.Timeout(10.0)
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
_RANK = {AccountRole.MEMBER: 0, AccountRole.ADMIN: 1, AccountRole.OWNER: 2}


class SsoError(Exception):
    """A sign-on that cannot go on; the message is shown on the sign-in page."""


@dataclass(frozen=True, slots=True)
class RoleRule:
    claim: str
    value: str
    role: AccountRole | ServerRole
    server_id: int | None = None


@dataclass(frozen=True, slots=True)
class MappedRole:
    role: AccountRole
    server_roles: dict[int, ServerRole] = field(default_factory=dict)


def parse_role_map(text: str, *, default_claim: str) -> list[RoleRule]:
    """`[claim:]value=Role[,…]` where Role is Owner, Admin, Editor:<server ID> or Viewer:<server ID>;
    the claim may be a dotted path (`realm_access.roles`). Raises ValueError on a bad entry."""
    rules = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        left, sep, right = entry.rpartition("=")
        if not sep or not left or not right:
            raise ValueError(f"OIDC_ROLE_MAP entry {entry!r} is not claim:value=Role")
        claim, _, value = left.rpartition(":") if ":" in left else ("", "", left)
        name, _, server = right.strip().partition(":")
        lowered = name.strip().lower()
        if lowered in ("owner", "admin") and not server:
            rules.append(RoleRule(claim=claim or default_claim, value=value, role=AccountRole(lowered)))
        elif lowered in ("editor", "viewer") and server.strip().isdigit():
            rules.append(RoleRule(claim=claim or default_claim, value=value, role=ServerRole(lowered), server_id=int(server)))
        else:
            raise ValueError(f"OIDC_ROLE_MAP entry {entry!r}: the role is Owner, Admin, Editor:<server ID> or Viewer:<server ID>")
    return rules


def _claim(claims: dict[str, Any], path: str) -> list[str]:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def map_role(claims: dict[str, Any], rules: list[RoleRule]) -> MappedRole | None:
    """The strongest account role the claims earn, with any per-server roles; None when no rule matches."""
    best: AccountRole | None = None
    servers: dict[int, ServerRole] = {}
    for rule in rules:
        if rule.value not in _claim(claims, rule.claim):
            continue
        if isinstance(rule.role, AccountRole):
            best = rule.role if best is None or _RANK[rule.role] > _RANK[best] else best
        elif rule.server_id is not None and servers.get(rule.server_id) is not ServerRole.EDITOR:
            servers[rule.server_id] = rule.role
    if best is not None:
        return MappedRole(role=best)
    return MappedRole(role=AccountRole.MEMBER, server_roles=servers) if servers else None


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


# --- the provider ------------------------------------------------------------------------------

_cache: dict[str, tuple[float, Any]] = {}


async def _get_json(url: str, *, fresh: bool = False) -> Any:
    hit = _cache.get(url)
    if hit is not None and not fresh and hit[0] > time.monotonic():
        return hit[1]
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            value = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(f"The identity provider could not be reached ({url}): {exc}") from exc
    _cache[url] = (time.monotonic() + CACHE_SECONDS, value)
    return value


async def discovery(settings: Settings) -> dict[str, Any]:
    issuer = settings.oidc_issuer.rstrip("/")
    document = await _get_json(f"{issuer}/.well-known/openid-configuration")
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
        raise SsoError("The provider's discovery document names another issuer than OIDC_ISSUER.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(key), str):
            raise SsoError(f"The provider's discovery document has no {key}.")
    return document


# --- the flow ----------------------------------------------------------------------------------


async def start(*, session: AsyncSession, settings: Settings, origin: str, next_url: str) -> tuple[str, str]:
    """The provider's authorization URL to send the browser to, and the state for its cookie."""
    document = await discovery(settings)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)[:96]
    now = datetime.now(UTC)
    await repository.add_oidc_login(
        session=session,
        row=ConsoleOidcLogin(
            state_sha256=sha256(state),
            nonce=nonce,
            code_verifier=verifier,
            next_url=next_url,
            expires_at=now + timedelta(minutes=LOGIN_MINUTES),
        ),
        now=now,
    )
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": f"{origin}{CALLBACK_PATH}",
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    endpoint = str(document["authorization_endpoint"])
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}", state


async def _exchange(*, settings: Settings, document: dict[str, Any], code: str, verifier: str, redirect_uri: str) -> str:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.post(
                str(document["token_endpoint"]),
                data=data,
                auth=(settings.oidc_client_id, settings.oidc_client_secret),
                headers={"Accept": "application/json"},
            )
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(f"The identity provider's token endpoint failed: {exc}") from exc
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        raise SsoError(f"The identity provider refused the sign-in code{f': {reason}' if reason else ''}.")
    return str(body["id_token"])


async def verify_id_token(*, settings: Settings, document: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, once its signature (the provider's JWKS), issuer, audience, times and nonce hold."""
    for fresh in (False, True):  # a key not in the cached set: read the set again once (key rotation)
        keys = KeySet.import_key_set(await _get_json(str(document["jwks_uri"]), fresh=fresh))
        try:
            token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            break
        except JoseError as exc:
            if fresh:
                raise SsoError(f"The ID token's signature does not verify: {exc.error}") from exc
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": str(document["issuer"])},
        aud={"essential": True, "value": settings.oidc_client_id},
        sub={"essential": True},
        exp={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise SsoError(f"The ID token is not valid here: {exc.error} {exc.description or ''}".strip()) from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.oidc_client_id:
        raise SsoError("The ID token was issued to another client (azp).")
    return claims


_NOT_IN_NAME = re.compile(r"[^a-z0-9._@-]")


def _username_for(claims: dict[str, Any]) -> str:
    for key in ("preferred_username", "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            name = _NOT_IN_NAME.sub("-", value.strip().lower())[:64].strip("-._@") or "user"
            return name if name != ADMIN_USERNAME else "admin-sso"
    return "user"


async def _user_for(*, session: AsyncSession, claims: dict[str, Any], mapped: MappedRole) -> ConsoleUser:
    subject = str(claims["sub"])[:255]
    user = await repository.get_user_by_subject(session=session, subject=subject)
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    if user is None and email and claims.get("email_verified") is True:
        known = await repository.get_user_by_email(session=session, email=email)
        if known is not None and known.oidc_subject is None:
            known.oidc_subject = subject  # the same person, by a verified address: link the accounts
            user = known
    if user is None:
        base = _username_for(claims)
        name, n = base, 1
        while await repository.get_user(session=session, username=name) is not None:
            n += 1
            name = f"{base[:60]}-{n}"
        clean_username(name)
        user = await repository.add_user(
            session=session,
            user=ConsoleUser(username=name, password_hash=None, role=mapped.role, email=email, oidc_subject=subject, session_version=0),
        )
    return user


async def finish(*, session: AsyncSession, settings: Settings, origin: str, state: str, code: str, client_ip: str) -> tuple[str, str]:
    """Check the provider's answer and sign the user in: the session token and the page to go to."""
    now = datetime.now(UTC)
    login = await repository.take_oidc_login(session=session, state_sha256=sha256(state), now=now) if state and len(state) < 200 else None
    if login is None:
        raise SsoError("This sign-on expired or was already used. Start again.")
    document = await discovery(settings)
    id_token = await _exchange(
        settings=settings, document=document, code=code, verifier=login.code_verifier, redirect_uri=f"{origin}{CALLBACK_PATH}"
    )
    claims = await verify_id_token(settings=settings, document=document, id_token=id_token, nonce=login.nonce)
    try:
        rules = parse_role_map(settings.oidc_role_map, default_claim=settings.oidc_role_claim)
    except ValueError as exc:
        raise SsoError(str(exc)) from exc
    mapped = map_role(claims, rules)
    who = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:64]
    if mapped is None:
        await audit_event(
            session=session, actor=who, action="sign_in.failed", client_ip=client_ip, details={"method": "sso", "reason": "no role"}
        )
        raise SsoError("Your single sign-on account has no role in this Postgate. Ask an Owner to map one of your groups (OIDC_ROLE_MAP).")
    try:
        user = await _user_for(session=session, claims=claims, mapped=mapped)
    except ConsoleUserError as exc:
        raise SsoError(str(exc)) from exc
    if user.disabled_at is not None:
        await audit_event(
            session=session,
            actor=user.username,
            action="sign_in.failed",
            client_ip=client_ip,
            details={"method": "sso", "reason": "disabled"},
        )
        raise SsoError("This console user is disabled.")
    if user.role is not mapped.role or await repository.server_roles(session=session, username=user.username) != mapped.server_roles:
        await audit_event(
            session=session,
            actor="sso",
            action="user.role_changed",
            target=user.username,
            client_ip=client_ip,
            details={"after": {"role": mapped.role.value, "servers": {str(k): v.value for k, v in mapped.server_roles.items()}}},
        )
    user.role = mapped.role
    await repository.replace_server_roles(session=session, username=user.username, roles=mapped.server_roles)
    fingerprint = user_fingerprint(user)
    if fingerprint is None:
        raise SsoError("This console user cannot sign in.")
    token = await start_session(
        session=session, settings=settings, username=user.username, fingerprint=fingerprint, pending=None, now=now, via_sso=True
    )
    await audit_event(session=session, actor=user.username, action="sign_in.succeeded", client_ip=client_ip, details={"method": "sso"})
    return token, login.next_url
