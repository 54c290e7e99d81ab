"""The audit record of an HTTP request: called by `deps.TransactionalRoute` (through
`app.state.audit_hook`) after the endpoint answered and before the commit, so the record commits
with the change.

Recorded: each change (POST, PUT, PATCH, DELETE) that answered below 400, made with a server or
account token or by a signed-in console user, and every console sign-in attempt. Not recorded:
sending (`/email…`, the SMTP gateway's `/internal/…`), validating a template, and requests made
without a credential (confirmation and unsubscribe links).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import service

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_AUDITED = ("/email", "/internal/", "/templates/validate", "/console/templates/preview")
SIGN_IN_PATH = "/console/sign-in"
MAX_BODY_BYTES = 64 * 1024


def actor_of(request: Request) -> str | None:
    state = request.state
    user = getattr(state, "console_user", None)
    if user:
        return f"user:{user}"
    for attribute in ("token_use", "account_token_use"):
        use = getattr(state, attribute, None)
        if use is not None:
            return str(use.actor)
    return None


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def _body(request: Request) -> dict[str, Any] | None:
    """What was posted (JSON or a form), as the record's `after` when no service noted its change."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded") or content_type.startswith("multipart/form-data"):
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        body = await request.body()
        if not body or len(body) > MAX_BODY_BYTES:
            return None
        parsed = json.loads(body)
    except (ValueError, RuntimeError):
        return None
    return parsed if isinstance(parsed, dict) else {"items": parsed} if isinstance(parsed, list) else None


def _target(request: Request) -> tuple[str, str]:
    params = {k: str(v) for k, v in request.path_params.items()}
    route = request.scope.get("route")
    template = str(getattr(route, "path", request.url.path))
    parts = [p for p in template.split("/") if p and not p.startswith("{") and p != "console"]
    target_type = parts[0] if parts else ""
    target_id = next(reversed(params.values()), "") if params else ""
    return target_type, target_id


async def record_request(request: Request, session: AsyncSession, response: Response) -> None:
    if request.method not in CHANGING:
        return
    path = request.url.path
    if path.lower().startswith(NOT_AUDITED):
        service.take_changes(session=session)
        return
    if path == SIGN_IN_PATH:
        await _record_sign_in(request, session, response)
        return
    actor = actor_of(request)
    if actor is None or response.status_code >= 400:
        service.take_changes(session=session)
        return
    route = request.scope.get("route")
    action = f"{request.method} {getattr(route, 'path', path)}"
    server_id = getattr(request.state, "server_id", None)
    if server_id is None and "server_id" in request.path_params:
        server_id = int(request.path_params["server_id"])
    ip = client_ip(request)
    if await service.record_changes(session=session, actor=actor, action=action, ip=ip, server_id=server_id):
        return
    target_type, target_id = _target(request)
    await service.record(
        session=session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        server_id=server_id,
        after=await _body(request),
        ip=ip,
    )


async def _record_sign_in(request: Request, session: AsyncSession, response: Response) -> None:
    form = await _body(request) or {}
    username = str(form.get("username", ""))[:64].strip().lower() or "?"
    status = response.status_code
    outcome = "ok" if status < 400 else "throttled" if status == 429 else "failed"
    await service.record(
        session=session, actor=f"user:{username}", action="console.sign-in", target_type="console", ip=client_ip(request), outcome=outcome
    )
