"""Getting a message to the next hop: a configured smarthost, or each domain's MX."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import idna

from api_service.config import Settings
from api_service.core.netguard import AddressRefused, HostNotFound, IPNetwork, LookupFailed, dns_resolver, parse_networks, resolve_public
from api_service.delivery.policy import Policy, SourceIp, destination_key, relay_key
from api_service.delivery.tlspolicy import OPPORTUNISTIC, TlsPlan, TlsPolicy, TlsRefused, TlsResult, tls_policy_from_settings

log = logging.getLogger("postgate.delivery")


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
    # A 4xx the server gave before any transaction (greeting, EHLO): it refused the connection
    # itself, which tells the shaper about the destination, not about the recipients.
    tls: TlsResult | None = None  # direct delivery: the TLS of the session that decided
    greeting: Reply | None = None


@dataclass(eq=False)
class Channel:
    """One connection slot of a destination, held by one lane of the worker: the open SMTP
    connection (when there is one) and what it has carried. Reused from message to message (RSET
    between) until it has carried the destination's messages per connection, or sat idle."""

    destination: str
    slot: uuid.UUID
    source: SourceIp | None = None
    client: aiosmtplib.SMTP | None = None
    server: str = ""
    ip: str = ""
    tls: TlsResult | None = None  # the TLS of the open connection (direct delivery)
    on_connection: int = 0  # transactions on the open connection
    connections: int = 0  # connections this channel opened
    idle_since: float = 0.0

    @property
    def open(self) -> bool:
        return self.client is not None and self.client.is_connected

    def keep(self, client: aiosmtplib.SMTP, *, server: str, ip: str) -> None:
        self.client, self.server, self.ip = client, server, ip
        self.on_connection = 0
        self.connections += 1

    def drop(self) -> None:
        if self.client is not None and self.client.is_connected:
            self.client.close()
        self.client = None
        self.on_connection = 0

    async def quit(self) -> None:
        """Say goodbye (QUIT) and close: the connection has carried its share."""
        client = self.client
        if client is not None and client.is_connected:
            with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                await client.quit()
        self.drop()


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
    *,
    host: str,
    port: int,
    helo: str,
    command_timeout: float,
    username: str | None,
    password: str | None,
    starttls: bool | None,
    source: SourceIp | None = None,
) -> aiosmtplib.SMTP:
    """Connected, greeted, TLS as asked (`None`: opportunistic, when offered) and logged in."""
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        timeout=command_timeout,
        local_hostname=(source.helo if source is not None and source.helo else helo),
        start_tls=False,
        use_tls=False,
        source_address=(source.address, 0) if source is not None else None,
    )
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
        await recipients_and_data(client, recipients={r: r for r in recipients}, data=data, attempt=attempt)
    except aiosmtplib.SMTPResponseException as exc:
        for rcpt in recipients:
            attempt.replies.setdefault(rcpt, _reply(exc))
        if exc.code >= 500:
            await client.rset()


async def recipients_and_data(
    client: aiosmtplib.SMTP, *, recipients: dict[str, str], data: bytes, attempt: Attempt, encoding: str = "ascii"
) -> None:
    """After an accepted MAIL: a RCPT per recipient (queued address → the address sent), then DATA.
    Replies are keyed by the queued address; a failing DATA raises."""
    accepted = []
    for address, wire in recipients.items():
        try:
            await client.rcpt(wire, encoding=encoding)
            accepted.append(address)
        except aiosmtplib.SMTPResponseException as exc:
            attempt.replies[address] = _reply(exc)
    if accepted:
        response = await client.data(data)
        for address in accepted:
            attempt.replies[address] = Reply(response.code, " ".join(response.message.split()))
    else:
        await client.rset()


def connection_failed(attempt: Attempt, recipients: list[str], host: str, port: int, exc: BaseException) -> None:
    temporary = Reply(451, f"4.4.1 Connection problem with {host}:{port}: {type(exc).__name__} {exc}".strip())
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 500 and not attempt.replies:
        temporary = attempt.greeting = _reply(exc)  # the relay refused the connection itself (a 421 limit)
    for rcpt in recipients:
        attempt.replies.setdefault(rcpt, temporary)


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


# Direct delivery to each domain's MX (RFC 5321 §5.1, RFC 7505), guarded by netguard.

SMTP_PORT = 25
# RFC 5321 §4.2.4: a server that does not know EHLO answers 500 or 502; say HELO instead.
EHLO_UNKNOWN = frozenset({500, 502})


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # as queued: the key of Attempt.replies
    wire: str  # as sent in RCPT TO: the domain in its IDNA (ASCII) form
    utf8: bool  # the local part is not ASCII: needs the server's SMTPUTF8


class NoRoute(Exception):
    """No SMTP attempt can be made: every recipient gets `reply`."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.message}")
        self.reply = reply


class _TlsFailed(Exception):
    """The server offered STARTTLS and the handshake failed."""


def ascii_domain(domain: str) -> str:
    """The domain as DNS and RCPT TO know it: IDNA 2008 A-labels (UTS #46 mapping) when it is not ASCII."""
    if domain.isascii():
        return domain.lower()
    return idna.encode(domain, uts46=True).decode("ascii")


def wire_recipient(address: str) -> Recipient:
    """The queued address → what RCPT TO says. Raises ValueError for a domain IDNA cannot encode."""
    local, _, domain = address.rpartition("@")
    try:
        encoded = ascii_domain(domain)
    except idna.IDNAError as exc:
        raise ValueError(f"{domain!r} is not a valid internationalised domain name ({exc})") from None
    return Recipient(address=address, wire=f"{local}@{encoded}", utf8=not local.isascii())


async def mx_hosts(domain: str, *, resolver: dns.asyncresolver.Resolver) -> list[str]:
    """MX hosts of an ASCII domain in the order to try: by preference, equal preferences in random order;
    the domain itself when it has no MX (RFC 5321 §5.1). Raises NoRoute: NXDOMAIN and a null MX
    (RFC 7505) permanently, SERVFAIL and timeouts temporarily."""
    try:
        name = dns.name.from_text(domain)
    except dns.exception.DNSException:
        raise NoRoute(Reply(550, f"5.1.2 {domain} is not a valid domain name")) from None
    try:
        answer = await resolver.resolve(name, "MX", search=False)
    except dns.resolver.NXDOMAIN:
        raise NoRoute(Reply(550, f"5.1.2 Domain {domain} does not exist (NXDOMAIN)")) from None
    except dns.resolver.NoAnswer:
        return [domain]
    except dns.exception.DNSException as exc:
        raise NoRoute(Reply(451, f"4.4.3 DNS lookup of the MX of {domain} failed ({type(exc).__name__}); will retry")) from None
    by_preference: dict[int, list[str]] = defaultdict(list)
    for record in answer:
        # A "." exchange among real ones breaks RFC 7505; the real ones are still worth trying.
        if record.exchange != dns.name.root:
            by_preference[record.preference].append(record.exchange.to_text(omit_final_dot=True).lower())
    if not by_preference:
        raise NoRoute(Reply(556, f"5.1.10 {domain} accepts no mail (null MX, RFC 7505)"))
    hosts: list[str] = []
    for preference in sorted(by_preference):
        group = by_preference[preference]
        random.shuffle(group)  # RFC 5321 §5.1: spread the load over equal preferences
        hosts.extend(group)
    return list(dict.fromkeys(hosts))


class Transport:
    def __init__(
        self,
        *,
        relay: Relay | None,
        helo: str,
        timeout: float,
        pool_size: int = 20,
        resolver: dns.asyncresolver.Resolver | None = None,
        mx_allowed: Sequence[IPNetwork] = (),
        deadline: float | None = None,
        tls: TlsPolicy | None = None,
    ) -> None:
        self.relay = relay
        self.pool = RelayPool(relay, helo=helo, command_timeout=timeout, size=pool_size) if relay is not None else None
        self.helo = helo
        self.timeout = timeout
        self._resolver = resolver
        self.mx_allowed = list(mx_allowed)
        self.deadline = deadline if deadline is not None else 4 * timeout
        # Without a policy: opportunistic TLS to every MX (no MTA-STS, DANE or overrides).
        self.tls = tls if tls is not None else TlsPolicy(resolver=lambda: self.resolver, mta_sts=False, dane=False)
        # This worker's connections: `holder` names its slots in delivery_slots; idle channels wait
        # here for the next batch to the same destination, busy ones are with a lane.
        self.holder = uuid.uuid4()
        self.idle: dict[str, list[Channel]] = defaultdict(list)
        self.busy: set[Channel] = set()
        self._destinations: dict[str, tuple[float, str]] = {}

    @property
    def resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:  # the system's DNS servers, read when first needed
            self._resolver = dns_resolver("")
        return self._resolver

    # --- destinations and the channels to them ---------------------------------------------------

    async def destination_of(self, domain: str, *, policy: Policy) -> str:
        """The destination key of a recipient domain: the relay, its MX hosts' provider, or its MX
        host set (looked up, and remembered for a few minutes); `domain:<name>` when the lookup
        fails (the send will say why)."""
        if self.relay is not None:
            return relay_key(self.relay.host, self.relay.port)
        cached = self._destinations.get(domain)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            hosts = await mx_hosts(ascii_domain(domain), resolver=self.resolver)
            key = destination_key(hosts=hosts, policy=policy)
        except (NoRoute, idna.IDNAError, UnicodeError):
            key = f"domain:{domain}"[:200]
        if len(self._destinations) > 100_000:
            self._destinations.clear()
        self._destinations[domain] = (time.monotonic() + 300.0, key)
        return key

    def idle_counts(self) -> dict[str, int]:
        return {key: len(channels) for key, channels in self.idle.items() if channels}

    def take_idle(self, destination: str, count: int) -> list[Channel]:
        channels = self.idle.get(destination, [])
        taken, self.idle[destination] = channels[:count], channels[count:]
        return taken

    def put_idle(self, channel: Channel) -> None:
        channel.idle_since = time.monotonic()
        self.idle[channel.destination].append(channel)

    def expire_idle(self, seconds: float) -> list[Channel]:
        """Close the channels idle for longer than `seconds` (or whose server hung up); returned so
        that their slots are released."""
        now, expired = time.monotonic(), []
        for key, channels in list(self.idle.items()):
            keep = []
            for channel in channels:
                if now - channel.idle_since >= seconds or not channel.open:
                    channel.drop()
                    expired.append(channel)
                else:
                    keep.append(channel)
            if keep:
                self.idle[key] = keep
            else:
                del self.idle[key]
        return expired

    def slots(self) -> list[uuid.UUID]:
        """The slots this worker's channels hold, idle and busy."""
        return [c.slot for channels in self.idle.values() for c in channels] + [c.slot for c in self.busy]

    async def close_channels(self, channels: list[Channel]) -> None:
        for channel in channels:
            await channel.quit()

    def close(self) -> None:
        """Close every connection (the worker is stopping)."""
        for channels in self.idle.values():
            for channel in channels:
                channel.drop()
        self.idle.clear()
        for channel in self.busy:
            channel.drop()
        if self.pool is not None:
            self.pool.close()

    # --- sending ----------------------------------------------------------------------------------

    async def send(
        self, *, sender: str, domain: str, recipients: list[str], data: bytes, channel: Channel | None = None, per_connection: int = 0
    ) -> Attempt:
        """Deliver to the relay, or to `domain`'s MX; every recipient gets a reply in the Attempt.
        With a `channel`, on its open connection when it has one (and has carried fewer than
        `per_connection` messages), else on a new one that it keeps."""
        if channel is not None and channel.open and per_connection and channel.on_connection >= per_connection:
            await channel.quit()
        if self.relay is not None:
            if channel is None:
                pool = self.pool or RelayPool(self.relay, helo=self.helo, command_timeout=self.timeout)
                self.pool = pool
                return await pool.send(sender=sender, recipients=recipients, data=data)
            return await self._send_relay(channel, self.relay, sender=sender, recipients=recipients, data=data)
        attempt = Attempt(replies={})
        try:
            async with asyncio.timeout(self.deadline):
                await self._send_mx(sender=sender, domain=domain, recipients=recipients, data=data, attempt=attempt, channel=channel)
        except TimeoutError:
            if channel is not None:
                channel.drop()
            late = Reply(451, f"4.4.7 Delivery to {domain} took longer than {self.deadline:g} s; will retry")
            for rcpt in recipients:
                attempt.replies.setdefault(rcpt, late)
        return attempt

    async def _send_relay(self, channel: Channel, r: Relay, *, sender: str, recipients: list[str], data: bytes) -> Attempt:
        attempt = Attempt(replies={}, server=r.host)
        for reused in (True, False):
            client = channel.client if reused else None
            if reused and (client is None or not channel.open):
                continue
            attempt = Attempt(replies={}, server=r.host)
            try:
                if client is not None:
                    await client.rset()
                else:
                    client = await open_connection(
                        host=r.host,
                        port=r.port,
                        helo=self.helo,
                        command_timeout=self.timeout,
                        username=r.username,
                        password=r.password,
                        starttls=r.starttls,
                        source=channel.source,
                    )
                    peer = client.transport.get_extra_info("peername") if client.transport else None
                    channel.keep(client, server=r.host, ip=str(peer[0]) if peer else "")
                attempt.ip = channel.ip
                await transaction(client, sender=sender, recipients=recipients, data=data, attempt=attempt)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                channel.drop()
                if reused and not attempt.replies:
                    continue  # the relay closed an idle connection: try once on a new one
                connection_failed(attempt, recipients, r.host, r.port, exc)
                return attempt
            channel.on_connection += 1
            if not client.is_connected:
                channel.drop()
            return attempt
        return attempt

    async def _send_mx(
        self, *, sender: str, domain: str, recipients: list[str], data: bytes, attempt: Attempt, channel: Channel | None = None
    ) -> None:
        todo: list[Recipient] = []
        for address in recipients:
            try:
                todo.append(wire_recipient(address))
            except ValueError as exc:
                attempt.replies[address] = Reply(553, f"5.1.3 {exc}")
        if not todo:
            return
        client = channel.client if channel is not None and channel.open else None
        if (
            channel is not None
            and client is not None
            and await self._send_reused(channel, client, sender=sender, recipients=todo, data=data, attempt=attempt)
        ):
            return
        failure: Reply | None
        try:
            target = ascii_domain(domain)
            hosts = await mx_hosts(target, resolver=self.resolver)
        except idna.IDNAError as exc:
            hosts, failure = [], Reply(553, f"5.1.3 {domain!r} is not a valid internationalised domain name ({exc})")
        except NoRoute as exc:
            hosts, failure = [], exc.reply
        else:
            failure = await self._deliver_to_hosts(
                hosts, domain=target, sender=sender, recipients=todo, data=data, attempt=attempt, channel=channel
            )
        if failure is not None:
            for rcpt in todo:
                attempt.replies.setdefault(rcpt.address, failure)

    async def _send_reused(
        self, channel: Channel, client: aiosmtplib.SMTP, *, sender: str, recipients: list[Recipient], data: bytes, attempt: Attempt
    ) -> bool:
        """A transaction on the channel's open connection, RSET first; False when the connection
        turns out to be gone before MAIL was accepted (then a new one is opened)."""
        attempt.server, attempt.ip, attempt.tls = channel.server, channel.ip, channel.tls
        try:
            await client.rset()
            await self._transaction(client, sender=sender, recipients=recipients, data=data, attempt=attempt)
        except aiosmtplib.SMTPResponseException as exc:  # MAIL refused: on a connection already in use, this decides
            if exc.code == 421 or not client.is_connected:
                channel.drop()
            if exc.code == 421 and not attempt.replies:
                return False  # the server closes this connection (it carried enough): a new one
            for rcpt in recipients:
                attempt.replies.setdefault(rcpt.address, _reply(exc))
            return True
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            channel.drop()
            return False
        channel.on_connection += 1
        if not client.is_connected:
            channel.drop()
        return True

    async def _deliver_to_hosts(
        self,
        hosts: list[str],
        *,
        domain: str,
        sender: str,
        recipients: list[Recipient],
        data: bytes,
        attempt: Attempt,
        channel: Channel | None = None,
    ) -> Reply | None:
        """Each host in turn, each of its addresses in turn, until one decides (None); else the reply for all."""
        temporary: Reply | None = None
        missing: list[str] = []
        refused: list[str] = []
        policy = await self.tls.domain(domain)
        for host in hosts:
            if not policy.permits(host):
                self.tls.refused_host(policy, host)
                temporary = Reply(451, f"4.7.5 MX {host} is not listed in the MTA-STS policy of {domain} (mode enforce); will retry")
                continue
            plan = await self.tls.plan(policy, host)
            try:
                addresses = await resolve_public(host, SMTP_PORT, allowed=self.mx_allowed, resolver=self.resolver)
            except HostNotFound:
                missing.append(host)
                continue
            except AddressRefused as exc:
                log.warning("not connecting to MX %s of %s: %s", host, domain, exc)
                refused.append(f"{host} [{', '.join(exc.addresses)}]")
                continue
            except LookupFailed as exc:
                temporary = Reply(451, f"4.4.3 DNS lookup of {host} failed ({exc.detail}); will retry")
                continue
            for ip in addresses:
                attempt.server, attempt.ip = host, ip
                reply = await self._try_address(
                    host=host, ip=ip, sender=sender, recipients=recipients, data=data, attempt=attempt, plan=plan, channel=channel
                )
                if reply is None:
                    return None
                log.info("MX %s [%s] for %s: %s %s; trying the next address", host, ip, domain, reply.code, reply.message)
                temporary = reply
        # Any server that might come back, or any lookup that might succeed later, makes it temporary.
        if temporary is not None:
            return temporary
        if refused:
            return Reply(550, f"5.4.4 Refusing to deliver to non-public addresses: {'; '.join(refused)} (see MX_ALLOWED_NETWORKS)")
        if hosts == [domain]:
            return Reply(550, f"5.1.2 Domain {domain} has no MX and no address record")
        return Reply(550, f"5.4.4 No MX host of {domain} has an address: {', '.join(missing)}")

    async def _try_address(
        self,
        *,
        host: str,
        ip: str,
        sender: str,
        recipients: list[Recipient],
        data: bytes,
        attempt: Attempt,
        plan: TlsPlan | None = None,
        channel: Channel | None = None,
    ) -> Reply | None:
        """One connection. None: this server decided (replies in `attempt`); a Reply: try the next address.

        A connection failure, a timeout or a 4xx before MAIL was accepted moves on; a 5xx decides.
        With a channel, the connection is kept open in it for the next message.
        """
        source = channel.source if channel is not None else None
        client = aiosmtplib.SMTP(
            hostname=ip,
            port=SMTP_PORT,
            timeout=self.timeout,
            local_hostname=(source.helo if source is not None and source.helo else self.helo),
            start_tls=False,
            use_tls=False,
            source_address=(source.address, 0) if source is not None else None,
        )
        plan = plan or TlsPlan(host=host, check=OPPORTUNISTIC, required=False, source="")
        attempt.tls = None
        kept = False
        try:
            try:
                await self._hello(client, host=host, ip=ip, plan=plan, attempt=attempt)
            except aiosmtplib.SMTPResponseException as exc:
                attempt.greeting = _reply(exc)
                raise
            await self._transaction(client, sender=sender, recipients=recipients, data=data, attempt=attempt)
            if channel is not None and client.is_connected:
                channel.keep(client, server=host, ip=ip)
                channel.tls = attempt.tls
                channel.on_connection = 1
                kept = True
            else:
                with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                    await client.quit()
            return None
        except TlsRefused as exc:
            # MTA-STS enforce, DANE or a policy override: never on in clear; the next MX, or later.
            log.warning("TLS policy refuses %s [%s]: %s", host, ip, exc.detail)
            return Reply(451, f"4.7.5 {exc.detail} ({exc.result}); will retry")
        except _TlsFailed as exc:
            # Many MTAs (Postfix at security level "may", Exim) retry in plain text after a failed
            # handshake, and so do we: opportunistic TLS protects only against passive listening, an
            # active attacker can strip STARTTLS anyway; refusing would only lose mail to servers
            # with a broken TLS set-up. An MTA-STS "testing" policy first falls back to unverified
            # TLS. Each fallback is weaker than the last, so this cannot loop.
            fallback = plan.fallback()
            if fallback is None:
                return Reply(451, f"4.7.5 TLS handshake with {host} [{ip}] failed ({exc.__cause__}); will retry")
            log.warning("STARTTLS with %s [%s] failed (%s); retrying with %s", host, ip, exc.__cause__, fallback.check)
            client.close()
            return await self._try_address(
                host=host, ip=ip, sender=sender, recipients=recipients, data=data, attempt=attempt, plan=fallback, channel=channel
            )
        except aiosmtplib.SMTPResponseException as exc:
            reply = _reply(exc)
            if exc.code == 421 and attempt.greeting is None:
                attempt.greeting = reply  # a new connection turned away before any transaction: a connection limit
            if exc.code >= 500:  # a 5xx greeting, EHLO or MAIL: this server has spoken for everyone
                for rcpt in recipients:
                    attempt.replies.setdefault(rcpt.address, reply)
                return None
            return reply
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return Reply(451, f"4.4.1 Connection problem with {host} [{ip}]:{SMTP_PORT}: {type(exc).__name__} {exc}".strip())
        finally:
            if not kept and client.is_connected:
                client.close()

    async def _hello(self, client: aiosmtplib.SMTP, *, host: str, ip: str, plan: TlsPlan, attempt: Attempt) -> None:
        """Connect, greeting, EHLO (HELO when EHLO is unknown), STARTTLS as the TLS plan says
        (`delivery.tlspolicy`: opportunistic, MTA-STS, DANE or an override) and EHLO again."""
        await client.connect()
        await self._ehlo(client)
        try:
            attempt.tls = await self.tls.starttls(client, plan, ip=ip)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise _TlsFailed from exc
        if attempt.tls.version:
            await self._ehlo(client)

    @staticmethod
    async def _ehlo(client: aiosmtplib.SMTP) -> None:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if exc.code not in EHLO_UNKNOWN:
                raise
            await client.helo()

    async def _transaction(
        self, client: aiosmtplib.SMTP, *, sender: str, recipients: list[Recipient], data: bytes, attempt: Attempt
    ) -> None:
        """MAIL (its error is raised: the caller moves on after a 4xx), then RCPTs and DATA, which decide here."""
        smtputf8 = client.supports_extension("smtputf8")
        sendable = [r for r in recipients if smtputf8 or not r.utf8]
        unsendable = [r for r in recipients if r.utf8 and not smtputf8]
        needs_utf8 = any(r.utf8 for r in sendable)
        if sendable:
            await client.mail(sender, options=["SMTPUTF8"] if needs_utf8 else None)
        # RFC 6531 §3.2: without SMTPUTF8 a non-ASCII mailbox cannot be sent (and has no ASCII form).
        for rcpt in unsendable:
            attempt.replies[rcpt.address] = Reply(
                553, f"5.6.7 {attempt.server} does not offer SMTPUTF8, which the non-ASCII mailbox {rcpt.address} needs"
            )
        if not sendable:
            return
        try:
            await recipients_and_data(
                client,
                recipients={r.address: r.wire for r in sendable},
                data=data,
                attempt=attempt,
                encoding="utf-8" if needs_utf8 else "ascii",
            )
        except aiosmtplib.SMTPResponseException as exc:
            for rcpt in sendable:
                attempt.replies.setdefault(rcpt.address, _reply(exc))
            if exc.code >= 500:
                with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                    await client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # After MAIL was accepted this server decides; a message possibly half-sent is not sent again elsewhere now.
            broken = Reply(451, f"4.4.2 Connection with {attempt.server} [{attempt.ip}] lost: {type(exc).__name__} {exc}".strip())
            for rcpt in sendable:
                attempt.replies.setdefault(rcpt.address, broken)


def transport_from_settings(settings: Settings, *, helo: str) -> Transport:
    """The worker's Transport: relay or MX, the DNS server and the MX allow-list from settings."""
    return Transport(
        relay=parse_relay(settings.outbound_relay),
        helo=helo,
        timeout=settings.delivery_timeout_seconds,
        pool_size=settings.delivery_concurrency,
        resolver=dns_resolver(settings.dns_resolver) if settings.dns_resolver.strip() else None,  # None: the system's, when first needed
        mx_allowed=parse_networks(settings.mx_allowed_networks),
        deadline=settings.delivery_deadline_seconds,
        tls=tls_policy_from_settings(settings),
    )
