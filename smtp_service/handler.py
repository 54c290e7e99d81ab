"""aiosmtpd hooks: each return value is the SMTP reply."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv6Address, ip_address
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from shared.schemas.smtp import SmtpBatchEnvelope, SmtpBatchMessage

from smtp_service import metrics
from smtp_service.api_client import ApiClient, AuthOutcome, SubmitOutcome
from smtp_service.batcher import Batcher
from smtp_service.config import SmtpSettings
from smtp_service.logs import Throttle
from smtp_service.protocol import has_smuggled_end, normalise_line_endings, received_header, strip_spam_headers
from smtp_service.ratelimit import ClientLimits, PerMinute, client_key
from smtp_service.replies import bounce_report_reply, inbound_reply, recipient_reply, submission_reply

log = logging.getLogger("postgate.smtp")
throttle = Throttle(60.0)

INVALID = "535 5.7.8 Authentication credentials invalid"
DISABLED = "535 5.7.8 SMTP API access is not enabled for this server: turn on SmtpApiActivated in the server settings"
UNAVAILABLE = "454 4.7.0 Temporary authentication failure, please retry"
TOO_MANY = "421 4.7.0 Too many failed authentication attempts, closing connection"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"
DOMAINS_RETRY_SECONDS = 5.0


class IpThrottle:
    """Failed AUTHs per client IP in a sliding window; 0 allows any number.

    Each IP keeps at most `limit` timestamps, and IPs with no failure inside the window are
    forgotten (swept at most once a window), so the table stays as small as the recent attackers.
    """

    def __init__(self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._swept = clock()

    def blocked(self, ip: str) -> bool:
        if not self.limit:
            return False
        now = self.clock()
        self._sweep(now)
        recent = self._failures.get(ip)
        if recent is None:
            return False
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._failures[ip]
            return False
        return len(recent) >= self.limit

    def failed(self, ip: str) -> None:
        if self.limit:
            now = self.clock()
            self._sweep(now)
            self._failures.setdefault(ip, deque(maxlen=self.limit)).append(now)

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.window:
            return
        self._swept = now
        for ip in [ip for ip, times in self._failures.items() if not times or times[-1] <= now - self.window]:
            del self._failures[ip]

    def __len__(self) -> int:
        return len(self._failures)


class GatewayHandler:
    def __init__(
        self,
        *,
        api: ApiClient,
        settings: SmtpSettings,
        batcher: Batcher[SmtpBatchMessage, SubmitOutcome],
        auth: Batcher[str, AuthOutcome],
    ) -> None:
        self.api = api
        self.settings = settings
        self.batcher = batcher
        self.auth = auth
        self.throttle = IpThrottle(limit=settings.smtp_ip_auth_failures, window=settings.smtp_ip_window_seconds)

    # --- AUTH: the server API token is both the user name and the password -------------------

    async def _check(self, server: SMTP, user: bytes, password: bytes) -> AuthResult:
        session = server.session
        ip = str(session.peer[0]) if session is not None and session.peer else ""
        if self.throttle.blocked(ip):
            return await self._close(server)
        token = user.decode("utf-8", "replace").strip()
        # A token is printable ASCII; anything else cannot be one (nor go into an HTTP header).
        if not token or not token.isascii() or not token.isprintable() or not hmac.compare_digest(user, password):
            return await self._fail(server, ip, INVALID)
        outcome = await self.auth.submit(token)
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

    async def handle_exception(self, error: Exception) -> str:
        """A bug must not reach the client: aiosmtpd would put its text into a 500 reply."""
        log.error("SMTP session failed: %s", type(error).__name__, exc_info=error)
        return TEMPORARY_FAILURE

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
        submitted = SmtpBatchEnvelope(Token=token, MailFrom=envelope.mail_from or "", RcptTo=list(envelope.rcpt_tos), Size=len(raw))
        outcome = await self.batcher.submit(SmtpBatchMessage(envelope=submitted, raw=raw))
        reply = submission_reply(outcome)
        if not reply.startswith("250"):  # one line a minute per reply code: an API outage must not flood the log
            throttle.log(log, logging.WARNING, reply[:3], "submission from %s answered %r", session.peer, reply)
        return reply


class MxHandler:
    """The MX listener (SMTP_INBOUND_PORT), no AUTH: reports mailed to a return path (at
    RETURN_PATH_DOMAIN or at a sending domain's verified ReturnPathDomain) go to the bounce intake; mail for an inbound address (`<InboundHash>[+hash]@INBOUND_DOMAIN`, any address at
    a server's InboundDomain) is stored by the API; everything else is refused (no open relay).

    Anyone may connect, so each client IP (IPv6: /64) gets so many connections (421 4.7.0 beyond),
    messages and bytes (451 4.7.1) a minute; the trusted filter hops, which relay everyone's mail,
    are not limited."""

    def __init__(self, *, api: ApiClient, settings: SmtpSettings) -> None:
        self.api = api
        self.settings = settings
        self.trusted_filters = settings.trusted_filters
        self.limits = ClientLimits(
            PerMinute(
                connections=settings.smtp_inbound_ip_connections_per_minute,
                messages=settings.smtp_inbound_ip_messages_per_minute,
                bytes=settings.smtp_inbound_ip_bytes_per_minute,
            )
        )
        self._domains = frozenset({settings.return_path_domain.lower()})
        self._domains_until = 0.0
        self._domains_lock = asyncio.Lock()

    def admit(self, peer_ip: str) -> str | None:
        """The reply refusing a new connection from `peer_ip`, None to greet it."""
        if self._trusted(peer_ip):
            return None
        wait = self.limits.connect(client_key(peer_ip))
        if not wait:
            return None
        return _limited(peer_ip, f"421 4.7.0 Too many connections from your address, try again in {wait} seconds")

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:
        peer_ip = _peer_ip(session)
        wait = 0 if self._trusted(peer_ip) else self.limits.mail(client_key(peer_ip))
        if wait:
            return _limited(peer_ip, f"451 4.7.1 Too much mail from your address, try again in {wait} seconds")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def return_path_domains(self) -> frozenset[str]:
        """RETURN_PATH_DOMAIN and the verified ReturnPathDomains of the sending domains, asked of the
        API at most once per SMTP_INBOUND_CACHE_SECONDS; the last answer (at least RETURN_PATH_DOMAIN)
        while the API is away."""
        if time.monotonic() < self._domains_until:
            return self._domains
        async with self._domains_lock:  # one question at a time; the others take its answer
            now = time.monotonic()
            if now < self._domains_until:
                return self._domains
            found = await self.api.return_path_domains(account_token=self.settings.account_token)
            if found is not None:
                self._domains = frozenset(found) | {self.settings.return_path_domain.lower()}
            # Asked again after a failure too, but not at every RCPT while the API is away.
            wait = self.settings.smtp_inbound_cache_seconds
            self._domains_until = now + (wait if found is not None else min(wait, DOMAINS_RETRY_SECONDS))
        return self._domains

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain or any(c in address for c in "\r\n\x00 "):
            return "553 5.1.3 Recipient address is not valid"
        return_path = domain.lower() in await self.return_path_domains()
        state: Any = envelope
        if envelope.rcpt_tos and state.postgate_return_path != return_path:
            # One DATA reply answers for every recipient: reports and inbound mail are stored by
            # different endpoints, so a 452 has the client send the rest in a new transaction.
            return "452 4.5.3 Too many recipients: send mail for this domain in its own transaction"
        if len(envelope.rcpt_tos) >= self.settings.smtp_max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.settings.smtp_max_recipients} per message)"
        if not return_path:
            outcome = await self.api.check_inbound_recipient(account_token=self.settings.account_token, address=address)
            reply = recipient_reply(outcome, domain=domain)
            if not reply.startswith("250"):
                return reply
        state.postgate_return_path = return_path  # DATA goes where the first recipient decided
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_exception(self, error: Exception) -> str:
        log.error("return-path session failed: %s", type(error).__name__, exc_info=error)
        return TEMPORARY_FAILURE

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        peer_ip = _peer_ip(session)
        trusted = self._trusted(peer_ip)
        wait = 0 if trusted else self.limits.data(client_key(peer_ip), len(data))
        if wait:
            return _limited(peer_ip, f"451 4.7.1 Too much mail from your address, try again in {wait} seconds")
        raw = normalise_line_endings(data)
        if envelope.rcpt_tos and getattr(envelope, "postgate_return_path", False):
            return await self._report(envelope, raw)
        if has_smuggled_end(data):
            return "550 5.5.2 Message refused: a '.' line next to a bare CR or LF (SMTP smuggling)"
        if not trusted:
            raw = strip_spam_headers(raw)
        trace = received_header(
            helo=session.host_name or "",
            peer_ip=peer_ip,
            hostname=self.settings.smtp_hostname,
            protocol=("ESMTPS" if session.ssl else "ESMTP") if session.extended_smtp else "SMTP",
            queue_id=secrets.token_hex(8),
            recipient=envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None,
            when=datetime.now(UTC),
        )
        outcome = await self.api.deliver_inbound(
            account_token=self.settings.account_token, mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=trace + raw
        )
        reply = inbound_reply(outcome)
        if not reply.startswith("250"):
            log.warning("inbound mail from %s answered %r", session.peer, reply)
        return reply

    async def _report(self, envelope: Envelope, raw: bytes) -> str:
        status = await self.api.report_bounce(
            account_token=self.settings.account_token, mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw
        )
        return bounce_report_reply(status)

    def _trusted(self, peer_ip: str) -> bool:
        try:
            ip = ip_address(peer_ip)
        except ValueError:
            return False
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_filters)


def _limited(peer_ip: str, reply: str) -> str:
    """A per-IP limit's reply, logged at most once a minute (a flood must not flood the log)."""
    throttle.log(log, logging.WARNING, "mx-limit", "MX listener limiting %s: %s", peer_ip, reply)
    return reply


def _peer_ip(session: Session) -> str:
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""
