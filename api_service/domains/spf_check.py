"""Would a receiver's SPF check pass mail from this IP for this domain? A small evaluator of
RFC 7208 `check_host()` over the resolver `DNS_RESOLVER` names.

It follows `include:` and `redirect=`, resolves `a`, `mx` (with dual CIDR lengths) and `exists`,
and keeps RFC 7208 §4.6.4's limits: at most 10 terms that cost a DNS look-up (a record needing
more is a permerror at the receiver too), at most 10 MX hosts per `mx`, at most 2 look-ups that
find nothing. `ptr` is not evaluated (RFC 7208 §5.5: do not use it), and neither are terms with
macros (`%{i}`): each of those is reported as `neutral` with the reason, never as a pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from api_service.domains.dns import DnsLookup
from api_service.domains.spf import spf_record

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
MX_LIMIT = 10
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True, slots=True)
class SpfOutcome:
    result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    why: str
    record: str | None  # the domain's own SPF record (the top level)


class _PermError(Exception):
    pass


@dataclass
class _Budget:
    lookups: int = 0
    voids: int = 0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _PermError(f"more than {LOOKUP_LIMIT} DNS look-ups (RFC 7208 §4.6.4): receivers answer permerror")

    def found(self, records: list[str]) -> list[str]:
        if not records:
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise _PermError(f"more than {VOID_LIMIT} look-ups found nothing (RFC 7208 §4.6.4)")
        return records


def _cidr(spec: str) -> tuple[str, int | None, int | None]:
    """`host/24//64` → (host, 24, 64)."""
    host, _, v6 = spec.partition("//")
    host, _, v4 = host.partition("/")
    try:
        return host, int(v4) if v4 else None, int(v6) if v6 else None
    except ValueError:
        raise _PermError(f"bad CIDR length in {spec!r}") from None


def _in(ip: IPv4Address | IPv6Address, address: str, v4: int | None, v6: int | None) -> bool:
    with contextlib.suppress(ValueError):
        other = ip_address(address)
        if other.version != ip.version:
            return False
        length = (v4 if v4 is not None else 32) if other.version == 4 else (v6 if v6 is not None else 128)
        return ip in ip_network(f"{other}/{length}", strict=False)
    return False


async def check_host(ip: str, domain: str, *, dns: DnsLookup) -> SpfOutcome:
    """The SPF result a receiver would give mail from `ip` with `domain` as the envelope domain."""
    record = spf_record(await dns.txt(domain))
    try:
        address = ip_address(ip)
    except ValueError:
        return SpfOutcome("permerror", f"{ip!r} is not an IP address", record)
    budget = _Budget()
    try:
        result, why = await _evaluate(address, domain, record=record, dns=dns, budget=budget, depth=0)
    except _PermError as exc:
        return SpfOutcome("permerror", str(exc), record)
    return SpfOutcome(result, why, record)


async def _evaluate(
    ip: IPv4Address | IPv6Address, domain: str, *, record: str | None, dns: DnsLookup, budget: _Budget, depth: int
) -> tuple[str, str]:
    if record is None:
        return "none", f"{domain} publishes no SPF record (or more than one)"
    redirect = None
    for raw in record.split()[1:]:
        term = raw.lower()
        if "=" in term and ":" not in term.split("=", 1)[0]:
            name, _, value = term.partition("=")
            if name == "redirect":
                redirect = value
            continue  # exp= and unknown modifiers change nothing here
        qualifier = QUALIFIERS.get(term[0])
        if qualifier is not None:
            term = term[1:]
        else:
            qualifier = "pass"
        if "%" in term:
            return "neutral", f"{raw} uses a macro, which this check does not expand"
        mechanism, _, value = term.partition(":")
        mechanism, slash, cidr = mechanism.partition("/")
        if slash:
            value = f"{value}/{cidr}" if value else f"/{cidr}"
        if await _matches(ip, domain, mechanism, value, dns=dns, budget=budget, depth=depth):
            return qualifier, f"{ip} matches {raw} in the SPF record of {domain}"
    if redirect:
        budget.spend()
        target = spf_record(budget.found(await dns.txt(redirect)))
        if target is None:
            raise _PermError(f"redirect={redirect} has no SPF record")
        return await _evaluate(ip, redirect, record=target, dns=dns, budget=budget, depth=depth + 1)
    return "neutral", f"{ip} matches no mechanism of the SPF record of {domain}"


async def _matches(
    ip: IPv4Address | IPv6Address, domain: str, mechanism: str, value: str, *, dns: DnsLookup, budget: _Budget, depth: int
) -> bool:
    if mechanism == "all":
        return True
    if mechanism in ("ip4", "ip6"):
        try:
            network = ip_network(value, strict=False)
        except ValueError:
            raise _PermError(f"{mechanism}:{value} is not a network") from None
        return network.version == ip.version and ip in network
    if mechanism == "include":
        if depth >= LOOKUP_LIMIT:
            raise _PermError("includes nest too deep")
        budget.spend()
        included = spf_record(budget.found(await dns.txt(value)))
        if included is None:
            raise _PermError(f"include:{value} has no SPF record")
        result, _ = await _evaluate(ip, value, record=included, dns=dns, budget=budget, depth=depth + 1)
        if result in ("permerror", "none"):
            raise _PermError(f"include:{value} gives {result}")
        return result == "pass"
    if mechanism in ("a", "mx"):
        host, v4, v6 = _cidr(value)
        host = host or domain
        budget.spend()
        if mechanism == "a":
            return any(_in(ip, a, v4, v6) for a in budget.found(await dns.addresses(host)))
        exchanges = budget.found(await dns.mx(host))
        if len(exchanges) > MX_LIMIT:
            raise _PermError(f"mx:{host} has more than {MX_LIMIT} MX hosts")
        for exchange in exchanges:
            if any(_in(ip, a, v4, v6) for a in await dns.addresses(exchange)):
                return True
        return False
    if mechanism == "exists":
        budget.spend()
        return bool(await dns.addresses(value))
    if mechanism == "ptr":
        budget.spend()
        return False  # deprecated (RFC 7208 §5.5); never counted as a pass here
    raise _PermError(f"unknown mechanism {mechanism!r}")
