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

from api_service.core.netguard import dns_resolver


class DnsLookup(Protocol):
    async def txt(self, name: str) -> list[str]: ...
    async def cname(self, name: str) -> str | None: ...
    async def mx(self, name: str) -> list[str]: ...


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


@lru_cache(maxsize=8)
def lookup_for(resolver_setting: str) -> ResolverLookup:
    """The look-ups for a `DNS_RESOLVER` value (empty: the system's DNS servers)."""
    return ResolverLookup(dns_resolver(resolver_setting))
