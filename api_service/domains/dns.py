"""DNS look-ups for verifying domains, through the resolver `DNS_RESOLVER` names (the same one the
delivery worker asks for MX records), so the tests can answer them from a loopback DNS server.

A failed look-up (NXDOMAIN, no answer, SERVFAIL, timeout) reads as "not published": verification
is repeated by the user or the worker, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver
import dns.reversename

from api_service.core.netguard import dns_resolver


class DnsLookup(Protocol):
    async def txt(self, name: str) -> list[str]: ...
    async def cname(self, name: str) -> str | None: ...
    async def mx(self, name: str) -> list[str]: ...
    async def addresses(self, name: str) -> list[str]: ...
    async def ptr(self, ip: str) -> list[str]: ...
    async def query(self, name: str, rdtype: str) -> DnsAnswer: ...


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """What a look-up found: the records as text, or `failed` (SERVFAIL, timeout, refused) when the
    name could not be asked at all. NXDOMAIN and an empty answer are no records, not a failure."""

    records: list[str]
    failed: bool = False


def _host(value: object) -> str:
    return str(value).rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class ResolverLookup:
    resolver: dns.asyncresolver.Resolver

    async def _answer(self, name: str, rdtype: str) -> list[Any]:
        try:
            return list(await self.resolver.resolve(name, rdtype, search=False))
        except dns.exception.DNSException:
            return []

    async def txt(self, name: str) -> list[str]:
        """The TXT records of a name, each record's strings joined."""
        return [b"".join(record.strings).decode("utf-8", "replace") for record in await self._answer(name, "TXT")]

    async def cname(self, name: str) -> str | None:
        """Where a CNAME at the name points, lower-cased, without the final dot."""
        answer = await self._answer(name, "CNAME")
        return _host(answer[0].target) if answer else None

    async def mx(self, name: str) -> list[str]:
        """The MX hosts of a name, lower-cased, without the final dot (a null MX gives none)."""
        return [host for record in await self._answer(name, "MX") if (host := _host(record.exchange))]

    async def addresses(self, name: str) -> list[str]:
        """The IPv4 then IPv6 addresses of a name."""
        return [str(r.address) for r in await self._answer(name, "A")] + [str(r.address) for r in await self._answer(name, "AAAA")]

    async def ptr(self, ip: str) -> list[str]:
        """The reverse DNS names of an address, lower-cased, without the final dot."""
        try:
            name = dns.reversename.from_address(ip).to_text()
        except (dns.exception.SyntaxError, ValueError):
            return []
        return [_host(record.target) for record in await self._answer(name, "PTR")]

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """A look-up that tells a failure from an answer without records (a blocklist query needs it)."""
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return DnsAnswer(records=[])
        except dns.exception.DNSException:
            return DnsAnswer(records=[], failed=True)
        return DnsAnswer(records=[record.to_text().strip('"') for record in answer])


@lru_cache(maxsize=8)
def lookup_for(resolver_setting: str) -> ResolverLookup:
    """The look-ups for a `DNS_RESOLVER` value (empty: the system's DNS servers)."""
    return ResolverLookup(dns_resolver(resolver_setting))
