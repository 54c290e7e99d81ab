"""Who may call /internal/smtp/*: the SMTP gateway, with the installation's internal token.

These endpoints look up server tokens by the hundred and store mail for any server, so a stranger
gets nothing from them: no credential, or a wrong one, is a 401 before the body is read, and a
client that keeps presenting wrong ones is refused with 429 per address, like any token guessing.
The check runs in the route, before FastAPI parses the body or runs dependencies (a malformed body
from a stranger is still a 401, and no server token is looked up for them).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from api_service.config import Settings
from api_service.core import metrics
from api_service.core.errors import postmark_response
from api_service.core.gcra import Rate
from api_service.core.ratelimit import RateLimits, bucket_key
from api_service.deps import TransactionalRoute
from shared.constants import ErrorCode

# Wrong internal credentials per client address: 10 at once, then one a second. Only a
# misconfigured gateway or a stranger ever presents one.
REFUSED_RATE = Rate(per_second=1.0, burst=10)
REFUSED = "Request does not contain a valid internal token. Please check that the Authorization header is 'Bearer <INTERNAL_TOKEN>'."
BEARER = "bearer "


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def presents_internal_token(request: Request, settings: Settings) -> bool:
    """Does the request carry `Authorization: Bearer <INTERNAL_TOKEN>` (ACCOUNT_TOKEN when that is unset)?"""
    expected = settings.internal_credential
    header = request.headers.get("Authorization", "")
    if not expected or header[: len(BEARER)].lower() != BEARER:
        return False
    # Digests compared: compare_digest leaks the length of its arguments, not of a hash.
    return hmac.compare_digest(_digest(header[len(BEARER) :].strip()), _digest(expected))


async def refusal(request: Request) -> Response | None:
    """None for the gateway; otherwise the answer: 401, or 429 once this address has been refused too often."""
    settings: Settings = request.app.state.settings
    if presents_internal_token(request, settings):
        return None
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        address = request.client.host if request.client else ""
        decision = await limits.limiter.check(bucket_key("internal", address.encode()), REFUSED_RATE)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("internal").inc()
            response = postmark_response(
                429,
                ErrorCode.RATE_LIMIT_EXCEEDED,
                f"Rate limit exceeded: too many requests without a valid internal token. Retry after {decision.retry_after} seconds.",
            )
            response.headers["Retry-After"] = str(decision.retry_after)
            return response
    response = postmark_response(401, ErrorCode.INVALID_TOKEN, REFUSED)
    # Tells the gateway that the API refused it (a misconfiguration: retry later), not a sender's token.
    response.headers["WWW-Authenticate"] = 'Bearer realm="postgate-internal"'
    return response


class InternalRoute(TransactionalRoute):
    """A TransactionalRoute that answers only the SMTP gateway (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def gateway_only(request: Request) -> Response:
            refused = await refusal(request)
            if refused is not None:
                return refused
            return await handler(request)

        return gateway_only
