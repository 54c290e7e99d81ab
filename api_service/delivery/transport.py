"""Getting a message to the next hop: a configured smarthost, or each domain's MX."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    message: str


@dataclass(slots=True)
class Attempt:
    """Per recipient: the reply that decides its fate; and the server that gave it."""

    replies: dict[str, Reply]
    server: str = ""
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Relay:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False


def parse_relay(value: str) -> Relay | None:
    """`smtp://[user:pass@]host:port[?starttls=true]` → Relay; `mx` → None (direct delivery)."""
    if value.strip().lower() == "mx":
        return None
    parts = urlsplit(value)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"OUTBOUND_RELAY must be smtp://[user:pass@]host:port[?starttls=true] or mx, not {value!r}")
    query = parse_qs(parts.query)
    return Relay(
        host=parts.hostname,
        port=parts.port or 25,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=query.get("starttls", ["false"])[0].lower() == "true",
    )


def _reply(exc: aiosmtplib.SMTPResponseException) -> Reply:
    return Reply(exc.code, " ".join(exc.message.split()))


async def open_connection(
    *, host: str, port: int, helo: str, command_timeout: float, username: str | None, password: str | None, starttls: bool | None
) -> aiosmtplib.SMTP:
    """Connected, greeted, TLS as asked (`None`: opportunistic, when offered) and logged in."""
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=command_timeout, local_hostname=helo, start_tls=False, use_tls=False)
    try:
        await client.connect()
        await client.ehlo()
        if starttls or (starttls is None and client.supports_extension("starttls")):
            context = ssl.create_default_context()
            if starttls is None:
                # Opportunistic TLS: most MX certificates would not verify for the MX name we hold.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            await client.starttls(tls_context=context)
        if username and password:
            await client.login(username, password)
    except BaseException:
        client.close()
        raise
    return client


async def transaction(client: aiosmtplib.SMTP, *, sender: str, recipients: list[str], data: bytes, attempt: Attempt) -> None:
    """MAIL, a RCPT per recipient, DATA. RCPT replies decide for one recipient, MAIL and DATA for all."""
    try:
        await client.mail(sender)
        accepted = []
        for rcpt in recipients:
            try:
                await client.rcpt(rcpt)
                accepted.append(rcpt)
            except aiosmtplib.SMTPResponseException as exc:
                attempt.replies[rcpt] = _reply(exc)
        if accepted:
            response = await client.data(data)
            for rcpt in accepted:
                attempt.replies[rcpt] = Reply(response.code, " ".join(response.message.split()))
        else:
            await client.rset()
    except aiosmtplib.SMTPResponseException as exc:
        for rcpt in recipients:
            attempt.replies.setdefault(rcpt, _reply(exc))
        if exc.code >= 500:
            await client.rset()


def connection_failed(attempt: Attempt, recipients: list[str], host: str, port: int, exc: BaseException) -> None:
    temporary = Reply(451, f"4.4.1 Connection problem with {host}:{port}: {type(exc).__name__} {exc}".strip())
    for rcpt in recipients:
        attempt.replies.setdefault(rcpt, temporary)


async def send_via(
    *,
    host: str,
    port: int,
    helo: str,
    sender: str,
    recipients: list[str],
    data: bytes,
    command_timeout: float,
    username: str | None = None,
    password: str | None = None,
    starttls: bool | None = None,
) -> Attempt:
    """One SMTP transaction on a connection of its own."""
    attempt = Attempt(replies={}, server=host)
    try:
        client = await open_connection(
            host=host, port=port, helo=helo, command_timeout=command_timeout, username=username, password=password, starttls=starttls
        )
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        connection_failed(attempt, recipients, host, port, exc)
        return attempt
    try:
        peer = client.transport.get_extra_info("peername") if client.transport else None
        attempt.ip = str(peer[0]) if peer else ""
        await transaction(client, sender=sender, recipients=recipients, data=data, attempt=attempt)
        await client.quit()
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        connection_failed(attempt, recipients, host, port, exc)
    finally:
        if client.is_connected:
            client.close()
    return attempt


class RelayPool:
    """Open connections to the smarthost, reused from message to message (no new TCP, EHLO, TLS
    and AUTH per message). A connection that fails in any way is dropped, never reused."""

    def __init__(self, relay: Relay, *, helo: str, command_timeout: float, size: int = 20) -> None:
        self.relay = relay
        self.helo = helo
        self.command_timeout = command_timeout
        self.size = size
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, *, sender: str, recipients: list[str], data: bytes) -> Attempt:
        r = self.relay
        for reused in (True, False):
            client = self._idle.pop() if reused and self._idle else None
            if reused and client is None:
                continue
            attempt = Attempt(replies={}, server=r.host)
            try:
                if client is None:
                    client = await open_connection(
                        host=r.host,
                        port=r.port,
                        helo=self.helo,
                        command_timeout=self.command_timeout,
                        username=r.username,
                        password=r.password,
                        starttls=r.starttls,
                    )
                peer = client.transport.get_extra_info("peername") if client.transport else None
                attempt.ip = str(peer[0]) if peer else ""
                await transaction(client, sender=sender, recipients=recipients, data=data, attempt=attempt)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                if client is not None and client.is_connected:
                    client.close()
                if reused and not attempt.replies:
                    continue  # the relay closed an idle connection: try once on a new one
                connection_failed(attempt, recipients, r.host, r.port, exc)
                return attempt
            if len(self._idle) < self.size:
                self._idle.append(client)
            else:
                client.close()
            return attempt
        connection_failed(attempt, recipients, r.host, r.port, ConnectionError("no connection"))
        return attempt

    def close(self) -> None:
        for client in self._idle:
            client.close()
        self._idle.clear()


async def mx_hosts(domain: str) -> list[str]:
    """MX hosts by preference; the domain itself when it has none (RFC 5321 §5.1)."""
    try:
        answer = await dns.asyncresolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda r: r.preference)
        hosts = [str(r.exchange).rstrip(".") for r in records]
        return [h for h in hosts if h] or []
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return [domain]
    except dns.exception.DNSException:
        return []


class Transport:
    def __init__(self, *, relay: Relay | None, helo: str, timeout: float, pool_size: int = 20) -> None:
        self.relay = relay
        self.pool = RelayPool(relay, helo=helo, command_timeout=timeout, size=pool_size) if relay is not None else None
        self.helo = helo
        self.timeout = timeout

    async def send(self, *, sender: str, domain: str, recipients: list[str], data: bytes) -> Attempt:
        if self.pool is not None:
            return await self.pool.send(sender=sender, recipients=recipients, data=data)
        hosts = await mx_hosts(domain)
        if not hosts:
            return Attempt(replies={r: Reply(451, f"4.4.3 DNS lookup for {domain} failed") for r in recipients})
        attempt = Attempt(replies={})
        for host in hosts:
            attempt = await send_via(
                host=host, port=25, helo=self.helo, sender=sender, recipients=recipients, data=data, command_timeout=self.timeout
            )
            # Only a connection-level failure (every reply 451 from us) moves on to the next MX.
            if not all(reply.message.startswith("4.4.1") for reply in attempt.replies.values()):
                break
        return attempt
