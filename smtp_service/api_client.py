"""The gateway's only way to api_service: one long-lived, pooled httpx client."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from enum import Enum

import httpx
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH, BounceReport
from shared.schemas.smtp import SMTP_AUTH_PATH, SMTP_SUBMIT_PATH, SmtpAuthResponse, SmtpSubmission, SmtpSubmissionResult

from smtp_service.ratelimit import RateLimitedTokens, parse_retry_after


class AuthOutcome(Enum):
    OK = "ok"
    INVALID = "invalid"
    DISABLED = "disabled"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What the API said: a status code (0 when it could not be reached) and its parsed body."""

    status: int
    result: SmtpSubmissionResult | None = None
    error_code: int | None = None
    message: str = ""
    retry_after: float = 0.0  # with status 429: seconds until the API takes this token's messages again


class ApiClient:
    def __init__(self, *, base_url: str, timeout: float, auth_cache_seconds: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"Accept": "application/json"},
        )
        self._auth_cache_seconds = auth_cache_seconds
        self._auth_cache: dict[str, tuple[float, AuthOutcome]] = {}
        self.rate_limited = RateLimitedTokens()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def authenticate(self, token: str) -> AuthOutcome:
        """Is this server token valid, and is SMTP on for its server? Cached briefly."""
        cached = self._auth_cache.get(token)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await self._client.post(SMTP_AUTH_PATH, headers={SERVER_TOKEN_HEADER: token})
        except httpx.HTTPError:
            return AuthOutcome.UNAVAILABLE
        if response.status_code == 401:
            outcome = AuthOutcome.INVALID
        elif response.status_code == 200:
            body = SmtpAuthResponse.model_validate(response.json())
            outcome = AuthOutcome.OK if body.SmtpApiActivated else AuthOutcome.DISABLED
        else:
            return AuthOutcome.UNAVAILABLE
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[token] = (time.monotonic() + self._auth_cache_seconds, outcome)
        return outcome

    async def report_bounce(self, *, account_token: str, rcpt_tos: list[str], raw: bytes) -> int:
        """Hand a report mailed to the return path to the API; its HTTP status, 0 if unreachable."""
        report = BounceReport(RcptTo=rcpt_tos, RawMessage=base64.b64encode(raw).decode("ascii"))
        try:
            response = await self._client.post(
                BOUNCE_REPORT_PATH,
                content=report.model_dump_json(),
                headers={ACCOUNT_TOKEN_HEADER: account_token, "Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            return 0
        return response.status_code

    async def submit(self, *, token: str, mail_from: str, rcpt_tos: list[str], raw: bytes) -> SubmitOutcome:
        submission = SmtpSubmission(MailFrom=mail_from, RcptTo=rcpt_tos, RawMessage=base64.b64encode(raw).decode("ascii"))
        try:
            response = await self._client.post(
                SMTP_SUBMIT_PATH,
                content=submission.model_dump_json(),
                headers={SERVER_TOKEN_HEADER: token, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return SubmitOutcome(status=0, message=type(exc).__name__)
        if response.status_code == 200:
            return SubmitOutcome(status=200, result=SmtpSubmissionResult.model_validate(response.json()))
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self.rate_limited.note(token, retry_after)
            return SubmitOutcome(status=429, error_code=429, message="Rate limit exceeded", retry_after=retry_after)
        try:
            body = response.json()
            return SubmitOutcome(status=response.status_code, error_code=int(body["ErrorCode"]), message=str(body["Message"]))
        except (ValueError, KeyError, TypeError):
            return SubmitOutcome(status=response.status_code, message=response.text[:200])
