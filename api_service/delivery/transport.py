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
    """One SMTP transaction. `starttls=None` means opportunistic (when the server offers it).

    Connection problems and MAIL/DATA refusals apply to every recipient; RCPT replies to one.
    """
    temporary = Reply(451, "")
    attempt = Attempt(replies={}, server=host)
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=command_timeout, local_hostname=helo, start_tls=False, use_tls=False)
    try:
        await client.connect()
        sock = client.transport.get_extra_info("peername") if client.transport else None
        attempt.ip = str(sock[0]) if sock else ""
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
        await client.quit()
    except aiosmtplib.SMTPResponseException as exc:
        for rcpt in recipients:
            attempt.replies.setdefault(rcpt, _reply(exc))
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        temporary = Reply(451, f"4.4.1 Connection problem with {host}:{port}: {type(exc).__name__} {exc}".strip())
        for rcpt in recipients:
            attempt.replies.setdefault(rcpt, temporary)
    finally:
        if client.is_connected:
            client.close()
    return attempt


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
    def __init__(self, *, relay: Relay | None, helo: str, timeout: float) -> None:
        self.relay = relay
        self.helo = helo
        self.timeout = timeout

    async def send(self, *, sender: str, domain: str, recipients: list[str], data: bytes) -> Attempt:
        if self.relay is not None:
            r = self.relay
            return await send_via(
                host=r.host,
                port=r.port,
                helo=self.helo,
                sender=sender,
                recipients=recipients,
                data=data,
                command_timeout=self.timeout,
                username=r.username,
                password=r.password,
                starttls=r.starttls,
            )
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
