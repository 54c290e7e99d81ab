"""The gateway's only way to api_service: one long-lived, pooled httpx client."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from enum import Enum

import httpx
from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER, ErrorCode
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH, RETURN_PATH_DOMAINS_PATH, BounceReport, ReturnPathDomains
from shared.schemas.inbound_smtp import (
    INBOUND_MESSAGE_PATH,
    INBOUND_RECIPIENT_PATH,
    InboundDelivery,
    InboundDeliveryResult,
    InboundRecipientQuery,
    InboundRecipientVerdict,
)
from shared.schemas.smtp import (
    SMTP_AUTH_BATCH_PATH,
    SMTP_BATCH_CONTENT_TYPE,
    SMTP_BATCH_PATH,
    SMTP_SUBMIT_PATH,
    SMTP_TOKEN_MAX_CHARS,
    SmtpAuthBatch,
    SmtpAuthBatchResult,
    SmtpBatchMessage,
    SmtpBatchResult,
    SmtpSubmission,
    SmtpSubmissionResult,
    encode_smtp_batch,
)

from smtp_service.logs import Throttle
from smtp_service.ratelimit import RateLimitedTokens, parse_retry_after

log = logging.getLogger("postgate.smtp")
throttle = Throttle(60.0)


class AuthOutcome(Enum):
    OK = "ok"
    INVALID = "invalid"
    DISABLED = "disabled"
    UNAVAILABLE = "unavailable"


class RecipientOutcome(Enum):
    """Whether the MX listener takes mail for an address."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown"  # an inbound domain, but no server receives at this address
    FOREIGN = "foreign"  # not a domain of ours: relaying
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    """What the API said to a received message: a status code (0 when it could not be reached)."""

    status: int
    message_ids: tuple[str, ...] = ()
    error_code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What the API said: a status code (0 when it could not be reached) and its parsed body."""

    status: int
    result: SmtpSubmissionResult | None = None
    error_code: int | None = None
    message: str = ""
    retry_after: float = 0.0  # with status 429: seconds until the API takes this token's messages again


def refused_gateway(response: httpx.Response) -> bool:
    """The API refused this gateway (its internal token), not the token of the sender it speaks for."""
    return response.status_code == 401 and response.headers.get("WWW-Authenticate", "").startswith("Bearer")


class ApiClient:
    def __init__(self, *, base_url: str, timeout: float, internal_token: str, recipient_cache_seconds: float = 30.0) -> None:
        # The internal token goes with every call: /internal/smtp/* answers nobody else.
        headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {internal_token}"} if internal_token else {})
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers=headers,
        )
        self._recipient_cache_seconds = recipient_cache_seconds
        # "a:<address>" and, for a domain that is no inbound domain, "d:<domain>".
        self._recipient_cache: dict[str, tuple[float, RecipientOutcome]] = {}
        self.rate_limited = RateLimitedTokens()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def authenticate(self, token: str) -> AuthOutcome:
        """Is this server token valid, and is SMTP on for its server? The batch check with one
        token, so that one AUTH and concurrent ones get the same answer for the same token."""
        [outcome] = await self.authenticate_many([token])
        return outcome

    async def authenticate_many(self, tokens: list[str]) -> list[AuthOutcome]:
        """Check the server tokens of the AUTH commands of concurrent connections in one call.

        Asked of the API at every AUTH, never cached: turning SMTP on or off, deleting a server or
        replacing its token takes effect for the next AUTH. Anything but a verdict per token (the
        API down, or refusing this gateway's internal token) is a temporary failure, never "invalid"."""
        # What cannot be a token is refused here: it would fail the whole call, and so its neighbours.
        asked = [token for token in tokens if 0 < len(token) <= SMTP_TOKEN_MAX_CHARS]
        verdicts = await self._verdicts(asked) if asked else []
        if len(verdicts) != len(asked):
            return [AuthOutcome.UNAVAILABLE] * len(tokens)
        found = dict(zip(asked, verdicts, strict=True))
        return [found.get(token, AuthOutcome.INVALID) for token in tokens]

    async def _verdicts(self, tokens: list[str]) -> list[AuthOutcome]:
        """One verdict per token, or none at all when the API gave no answer."""
        try:
            response = await self._client.post(
                SMTP_AUTH_BATCH_PATH, content=SmtpAuthBatch(Tokens=tokens).model_dump_json(), headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError:
            return []
        if response.status_code != 200:
            self._refused(response)
            return []
        try:
            verdicts = SmtpAuthBatchResult.model_validate_json(response.content).Verdicts
        except ValueError:
            return []
        return [
            AuthOutcome.INVALID if v.ServerID is None else AuthOutcome.OK if v.SmtpApiActivated else AuthOutcome.DISABLED for v in verdicts
        ]

    @staticmethod
    def _refused(response: httpx.Response) -> None:
        if refused_gateway(response):  # a misconfiguration must be loud: no mail moves
            throttle.log(
                log,
                logging.ERROR,
                "internal-token",
                "the API refused this gateway on %s: give the API and the gateway the same INTERNAL_TOKEN (or ACCOUNT_TOKEN)",
                response.request.url.path,
            )

    async def report_bounce(self, *, account_token: str, mail_from: str, rcpt_tos: list[str], raw: bytes) -> int:
        """Hand a report mailed to the return path to the API; its HTTP status, 0 if unreachable."""
        report = BounceReport(RcptTo=rcpt_tos, RawMessage=base64.b64encode(raw).decode("ascii"), MailFrom=mail_from)
        try:
            response = await self._client.post(
                BOUNCE_REPORT_PATH,
                content=report.model_dump_json(),
                headers={ACCOUNT_TOKEN_HEADER: account_token, "Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            return 0
        return response.status_code

    async def return_path_domains(self, *, account_token: str) -> list[str] | None:
        """The domains whose mail is a report (RETURN_PATH_DOMAIN and the verified ReturnPathDomains);
        None when the API gave no answer."""
        try:
            response = await self._client.get(RETURN_PATH_DOMAINS_PATH, headers={ACCOUNT_TOKEN_HEADER: account_token})
            if response.status_code != 200:
                self._refused(response)
                return None
            return [domain.lower() for domain in ReturnPathDomains.model_validate_json(response.content).Domains]
        except (httpx.HTTPError, ValueError):
            return None

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
        if refused_gateway(response):  # the gateway's credential, not the sender's: retry later
            self._refused(response)
            return SubmitOutcome(status=0, message=f"the API answered {response.status_code}")
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self.rate_limited.note(token, retry_after)
            return SubmitOutcome(
                status=429, error_code=ErrorCode.RATE_LIMIT_EXCEEDED, message="Rate limit exceeded", retry_after=retry_after
            )
        try:
            body = response.json()
            return SubmitOutcome(status=response.status_code, error_code=int(body["ErrorCode"]), message=str(body["Message"]))
        except (ValueError, KeyError, TypeError):
            return SubmitOutcome(status=response.status_code, message=response.text[:200])

    async def submit_batch(self, messages: list[SmtpBatchMessage]) -> list[SubmitOutcome]:
        """Hand several messages over in one call (raw, not base64), stored in one transaction; one
        outcome per message. A call that fails as a whole fails every message temporarily (451)."""
        try:
            response = await self._client.post(
                SMTP_BATCH_PATH, content=encode_smtp_batch(messages), headers={"Content-Type": SMTP_BATCH_CONTENT_TYPE}
            )
        except httpx.HTTPError as exc:
            return [SubmitOutcome(status=0, message=type(exc).__name__)] * len(messages)
        if response.status_code != 200:
            self._refused(response)
            # Nothing was committed, and it says nothing about any one message: all of them retry.
            return [SubmitOutcome(status=0, message=f"batch answered {response.status_code}")] * len(messages)
        try:
            result = SmtpBatchResult.model_validate_json(response.content)
        except ValueError:
            return [SubmitOutcome(status=0, message="unreadable batch answer")] * len(messages)
        if len(result.Outcomes) != len(messages):
            return [SubmitOutcome(status=0, message="batch answer of the wrong length")] * len(messages)
        outcomes = []
        for message, outcome in zip(messages, result.Outcomes, strict=True):
            if outcome.Status == 200 and outcome.Result is not None:
                outcomes.append(SubmitOutcome(status=200, result=outcome.Result))
            elif outcome.Status == 429:
                self.rate_limited.note(message.envelope.Token, float(outcome.RetryAfter))
                outcomes.append(
                    SubmitOutcome(
                        status=429,
                        error_code=ErrorCode.RATE_LIMIT_EXCEEDED,
                        message="Rate limit exceeded",
                        retry_after=float(outcome.RetryAfter),
                    )
                )
            else:
                outcomes.append(SubmitOutcome(status=outcome.Status, error_code=outcome.ErrorCode, message=outcome.Message))
        return outcomes

    async def check_inbound_recipient(self, *, account_token: str, address: str) -> RecipientOutcome:
        """Does a server receive mail at this address? Cached briefly, by address and, for a
        domain that is no inbound domain at all, by domain (a dictionary attack costs one call)."""
        domain = address.rpartition("@")[2].lower()
        now = time.monotonic()
        for key in (f"d:{domain}", f"a:{address.lower()}"):
            cached = self._recipient_cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        try:
            response = await self._client.post(
                INBOUND_RECIPIENT_PATH,
                content=InboundRecipientQuery(Address=address).model_dump_json(),
                headers={ACCOUNT_TOKEN_HEADER: account_token, "Content-Type": "application/json"},
            )
            if response.status_code != 200:
                return RecipientOutcome.UNAVAILABLE
            verdict = InboundRecipientVerdict.model_validate(response.json())
        except (httpx.HTTPError, ValueError):
            return RecipientOutcome.UNAVAILABLE
        if verdict.Accepted:
            key, outcome = f"a:{address.lower()}", RecipientOutcome.ACCEPTED
        elif verdict.DomainAccepted:
            key, outcome = f"a:{address.lower()}", RecipientOutcome.UNKNOWN
        else:
            key, outcome = f"d:{domain}", RecipientOutcome.FOREIGN
        if len(self._recipient_cache) > 10_000:
            self._recipient_cache.clear()
        self._recipient_cache[key] = (now + self._recipient_cache_seconds, outcome)
        return outcome

    async def deliver_inbound(self, *, account_token: str, mail_from: str, rcpt_tos: list[str], raw: bytes) -> InboundOutcome:
        """Hand a received message to the API, which stores it (committed) before answering 200."""
        delivery = InboundDelivery(MailFrom=mail_from, RcptTo=rcpt_tos, RawMessage=base64.b64encode(raw).decode("ascii"))
        try:
            response = await self._client.post(
                INBOUND_MESSAGE_PATH,
                content=delivery.model_dump_json(),
                headers={ACCOUNT_TOKEN_HEADER: account_token, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return InboundOutcome(status=0, message=type(exc).__name__)
        try:
            body = response.json()
            if response.status_code == 200:
                return InboundOutcome(status=200, message_ids=tuple(InboundDeliveryResult.model_validate(body).MessageIDs))
            return InboundOutcome(status=response.status_code, error_code=int(body["ErrorCode"]), message=str(body["Message"]))
        except (ValueError, KeyError, TypeError):
            return InboundOutcome(status=response.status_code if response.status_code != 200 else 0, message=response.text[:200])
