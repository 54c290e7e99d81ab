"""aiosmtpd hooks: each return value is the SMTP reply."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import time
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from smtp_service import metrics
from smtp_service.api_client import ApiClient, AuthOutcome
from smtp_service.config import SmtpSettings
from smtp_service.logs import Throttle
from smtp_service.protocol import has_smuggled_end, normalise_line_endings
from smtp_service.replies import submission_reply

log = logging.getLogger("postgate.smtp")
throttle = Throttle(60.0)

INVALID = "535 5.7.8 Authentication credentials invalid"
DISABLED = "535 5.7.8 SMTP API access is not enabled for this server: turn on SmtpApiActivated in the server settings"
UNAVAILABLE = "454 4.7.0 Temporary authentication failure, please retry"
TOO_MANY = "421 4.7.0 Too many failed authentication attempts, closing connection"


class IpThrottle:
    """Failed AUTHs per client IP in a sliding window; 0 allows any number."""

    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def blocked(self, ip: str) -> bool:
        if not self.limit:
            return False
        now = time.monotonic()
        recent = [t for t in self._failures.get(ip, []) if t > now - self.window]
        self._failures[ip] = recent
        return len(recent) >= self.limit

    def failed(self, ip: str) -> None:
        if self.limit:
            self._failures.setdefault(ip, []).append(time.monotonic())


class GatewayHandler:
    def __init__(self, *, api: ApiClient, settings: SmtpSettings) -> None:
        self.api = api
        self.settings = settings
        self.throttle = IpThrottle(limit=settings.smtp_ip_auth_failures, window=settings.smtp_ip_window_seconds)

    # --- AUTH: the server API token is both the user name and the password -------------------

    async def _check(self, server: SMTP, user: bytes, password: bytes) -> AuthResult:
        session = server.session
        ip = str(session.peer[0]) if session is not None and session.peer else ""
        if self.throttle.blocked(ip):
            return await self._close(server)
        token = user.decode("utf-8", "replace").strip()
        if not token or not hmac.compare_digest(user, password):
            return await self._fail(server, ip, INVALID)
        outcome = await self.api.authenticate(token)
        if outcome is AuthOutcome.OK:
            return AuthResult(success=True, auth_data=token)
        if outcome is AuthOutcome.UNAVAILABLE:
            return AuthResult(success=False, handled=False, message=UNAVAILABLE)
        return await self._fail(server, ip, DISABLED if outcome is AuthOutcome.DISABLED else INVALID)

    async def _fail(self, server: SMTP, ip: str, message: str) -> AuthResult:
        session: Any = server.session
        session.postgate_auth_failures = getattr(session, "postgate_auth_failures", 0) + 1
        metrics.auth_failed()
        self.throttle.failed(ip)
        if session.postgate_auth_failures >= self.settings.smtp_max_auth_failures:
            return await self._close(server)
        # handled=False with a message: aiosmtpd sends it (handled=True would send nothing).
        return AuthResult(success=False, handled=False, message=message)

    async def _close(self, server: SMTP) -> AuthResult:
        await server.push(TOO_MANY)
        if server.transport is not None:
            server.transport.close()
        return AuthResult(success=False, handled=True)

    @staticmethod
    async def _first_response(server: SMTP, args: list[str], prompt: str) -> bytes | AuthResult:
        """The initial response of `AUTH <mechanism> [response]`, asked for when absent."""
        if len(args) == 1:
            blob = await server.challenge_auth(prompt)
            # MISSING: the client aborted and aiosmtpd has already replied.
            return blob if isinstance(blob, bytes) else AuthResult(success=False, handled=True)
        try:
            return base64.b64decode(args[1], validate=True)
        except (binascii.Error, ValueError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode base64")

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = await self._first_response(server, args, "")
        if isinstance(blob, AuthResult):
            return blob
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot split AUTH PLAIN value")
        return await self._check(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        user = await self._first_response(server, args, "Username:")
        if isinstance(user, AuthResult):
            return user
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(server, user, password)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        # Tokens are stored only as SHA-256 digests, so the API cannot compute the HMAC. Since
        # the user name *is* the password (the token), the digest is checked here with the user
        # name as the key, and the user name is then checked against the API like any token.
        challenge = f"<{secrets.token_hex(8)}.{int(time.time())}@{self.settings.smtp_hostname}>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=True)
        user, _, digest = response.rpartition(b" ")
        expected = hmac.new(user, challenge, "md5").hexdigest().encode()
        if not user or not hmac.compare_digest(expected, digest.lower()):
            session = server.session
            ip = str(session.peer[0]) if session is not None and session.peer else ""
            return await self._fail(server, ip, INVALID)
        return await self._check(server, user, user)

    # --- Envelope and data -----------------------------------------------------------------------

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.settings.smtp_max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.settings.smtp_max_recipients} per message)"
        if "@" not in address or any(c in address for c in "\r\n\x00 "):
            return "553 5.1.3 Recipient address is not valid"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if has_smuggled_end(data):
            return "550 5.5.2 Message refused: a '.' line next to a bare CR or LF (SMTP smuggling)"
        raw = normalise_line_endings(data)
        token = str(session.auth_data)
        outcome = await self.api.submit(token=token, mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw)
        reply = submission_reply(outcome)
        if not reply.startswith("250"):  # one line a minute per reply code: an API outage must not flood the log
            throttle.log(log, logging.WARNING, reply[:3], "submission from %s answered %r", session.peer, reply)
        return reply


class ReturnPathHandler:
    """The return-path listener: like an MX, no AUTH, only for the return-path domain."""

    def __init__(self, *, api: ApiClient, settings: SmtpSettings) -> None:
        self.api = api
        self.settings = settings

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if address.rpartition("@")[2].lower() != self.settings.return_path_domain.lower():
            return "550 5.7.1 Relaying denied: this listener only takes mail for the return path"
        if len(envelope.rcpt_tos) >= self.settings.smtp_max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = normalise_line_endings(envelope.original_content or b"")
        status = await self.api.report_bounce(account_token=self.settings.account_token, rcpt_tos=list(envelope.rcpt_tos), raw=raw)
        if status == 200:
            return "250 2.0.0 Ok: report recorded"
        if 400 <= status < 500:
            return "554 5.6.0 Report refused"
        return "451 4.3.0 Temporary failure, please retry"
