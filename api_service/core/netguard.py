"""Which addresses Postgate may connect to on a sender's say-so (an MX record, a webhook URL).

A recipient domain's DNS and a webhook URL are chosen by whoever uses the API, so without a guard
they could aim the worker at the loopback interface, the LAN or a cloud metadata service (SSRF).
`resolve_public` resolves a name and keeps only the addresses `is_public` permits; the caller then
connects to one of those very addresses, so a second lookup cannot swap in another (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.inet
import dns.name
import dns.resolver

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

CLOUD_METADATA = IPv4Address("169.254.169.254")
CGNAT = IPv4Network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the IPv6 form of a public IPv4 address on IPv6-only networks.
NAT64 = IPv6Network("64:ff9b::/96")


def parse_networks(value: str) -> list[IPNetwork]:
    """`"10.0.0.0/8, fd00::/8, 192.0.2.7"` → networks; empty → []. ValueError names a bad item
    (host bits set, as in `10.0.0.1/8`, is an error: say `10.0.0.0/8` or `10.0.0.1/32`)."""
    networks: list[IPNetwork] = []
    for item in value.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ip_network(text))
        except ValueError as exc:
            raise ValueError(f"not a network in CIDR notation: {text!r} ({exc})") from None
    return networks


def is_public(ip: IPAddress | str, *, allowed: Sequence[IPNetwork]) -> bool:
    """True for a globally routable unicast address, or for any address inside `allowed`.

    Refused: loopback, private (RFC 1918, ULA), link-local (with the metadata address), CGNAT,
    multicast, reserved, unspecified, documentation and other special-purpose ranges, and IPv6
    forms that carry one of those (IPv4-mapped, 6to4, Teredo, NAT64). An IPv4-mapped address is
    judged as the IPv4 address it is, for the allow-list too.
    """
    address = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    if isinstance(address, IPv6Address) and address in NAT64:
        # ipaddress counts 64:ff9b::/96 as reserved (it lies in ::/8); judge the IPv4 it stands for.
        return _global_unicast(IPv4Address(int(address) & 0xFFFFFFFF))
    return _global_unicast(address) and all(_global_unicast(inner) for inner in _embedded(address))


def _global_unicast(address: IPAddress) -> bool:
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address == CLOUD_METADATA
    ):
        return False
    if isinstance(address, IPv4Address) and address in CGNAT:
        return False
    if isinstance(address, IPv6Address) and address.is_site_local:
        return False
    return address.is_global


def _embedded(address: IPAddress) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 transition address leads to."""
    if isinstance(address, IPv4Address):
        return []
    inner: list[IPv4Address] = []
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    return inner


class ResolveError(Exception):
    """Base of resolve_public's failures; `host` is the name looked up."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"{host}: {detail}")
        self.host = host
        self.detail = detail


class HostNotFound(ResolveError):
    """The name does not exist, or has no address: permanent."""


class LookupFailed(ResolveError):
    """No answer now (SERVFAIL, timeout, no server reachable): try again later."""


class AddressRefused(ResolveError):
    """The name has addresses, but `is_public` refuses every one of them."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        super().__init__(host, f"refused non-public address {', '.join(addresses)}")
        self.addresses = addresses


async def resolve_public(host: str, port: int, *, allowed: Sequence[IPNetwork], resolver: dns.asyncresolver.Resolver | None) -> list[str]:
    """The addresses of `host` that `is_public` permits, IPv4 first, each once; connect to one of these.

    `resolver` None uses the system's resolver (getaddrinfo: /etc/hosts, then DNS); a dnspython
    resolver asks its DNS servers for A and AAAA. An IP literal is checked as it is. Raises
    HostNotFound, LookupFailed or AddressRefused; never returns an empty list.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if dns.inet.is_address(literal):
        addresses = [str(ip_address(literal))]
    elif _is_localhost(literal):
        addresses = ["127.0.0.1", "::1"]  # RFC 6761 §6.3, whatever a DNS server says
    elif resolver is None:
        addresses = await _system_lookup(host, port)
    else:
        addresses = await _dns_lookup(host, resolver)
    ordered = sorted(dict.fromkeys(addresses), key=lambda a: ip_address(a).version)
    permitted = [a for a in ordered if is_public(a, allowed=allowed)]
    if not permitted:
        raise AddressRefused(host, ordered)
    return permitted


def _is_localhost(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


async def _system_lookup(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise HostNotFound(host, "no such host") from None
        raise LookupFailed(host, str(exc)) from None
    found = [str(info[4][0]).split("%", 1)[0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise HostNotFound(host, "no address")
    return found


async def _dns_lookup(host: str, resolver: dns.asyncresolver.Resolver) -> list[str]:
    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException as exc:
        raise HostNotFound(host, f"not a valid host name ({exc})") from None
    results = await asyncio.gather(*(_records(resolver, name, rdtype) for rdtype in ("A", "AAAA")), return_exceptions=True)
    found: list[str] = []
    failure: BaseException | None = None
    missing = 0
    for result in results:
        if isinstance(result, list):
            found.extend(result)
        elif isinstance(result, dns.resolver.NXDOMAIN):
            missing += 1
        elif isinstance(result, dns.exception.DNSException):
            failure = result
        else:
            raise result
    if found:  # one family answered: use it even if the other failed
        return found
    if failure is not None:
        raise LookupFailed(host, f"DNS lookup failed ({type(failure).__name__})")
    raise HostNotFound(host, "no such host" if missing else "no A or AAAA record")


async def _records(resolver: dns.asyncresolver.Resolver, name: dns.name.Name, rdtype: str) -> list[str]:
    answer = await resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
    return [rdata.to_text() for rdata in answer.rrset] if answer.rrset is not None else []


def dns_resolver(value: str, *, lifetime: float = 10.0) -> dns.asyncresolver.Resolver:
    """A dnspython resolver for `host[:port]` (`[v6]:port` for IPv6), or the system's DNS servers when empty."""
    text = value.strip()
    if not text:
        resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = lifetime
        return resolver
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"DNS_RESOLVER must be host[:port], not {value!r}")
            port = _port(rest[1:], value)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, value)
    if not dns.inet.is_address(host):
        raise ValueError(f"DNS_RESOLVER must name the DNS server by IP address, not {value!r}")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = lifetime
    return resolver


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"DNS_RESOLVER port must be 1-65535, in {value!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """Who may be the target of a URL a user gives (webhooks): checked when the URL is saved, for
    a clear error, and again at every connection (see core.guarded_http), which is what counts."""

    allowed: tuple[IPNetwork, ...] = ()
    resolver: dns.asyncresolver.Resolver | None = None
    timeout: float = 2.0

    async def refusal(self, url: str) -> str | None:
        """Why `url` may not be used, or None. A name that cannot be resolved now is let through:
        DNS may not be set up yet, and nothing connects to it without the check at send time."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return "it is not a valid URL"
        if parts.scheme not in ("http", "https") or not host:
            return "it is not an http or https URL"
        try:
            async with asyncio.timeout(self.timeout):
                await resolve_public(host, port or (443 if parts.scheme == "https" else 80), allowed=self.allowed, resolver=self.resolver)
        except AddressRefused as exc:
            return f"{host} is a loopback, private, link-local or otherwise internal address ({', '.join(exc.addresses)})"
        except (ResolveError, TimeoutError):
            return None
        return None
