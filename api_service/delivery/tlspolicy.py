"""Which TLS an MX must offer before it gets a message: the recipient domain's MTA-STS policy
(RFC 8461), its MX hosts' DANE TLSA records (RFC 7672), a per-destination override from the
settings or the policy file; otherwise opportunistic TLS, as RFC 3207 senders do.

Transport asks `TlsPolicy.domain` once per delivery and `TlsPolicy.plan` once per MX host, then
lets `TlsPolicy.starttls` do the handshake: it raises `TlsRefused` when the plan forbids going on
(the message is deferred, never sent in clear), and counts every session for TLS-RPT (tlsrpt).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.rdatatype
import dns.resolver
import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from api_service.config import Settings
from api_service.core.guarded_http import guarded_client
from api_service.core.netguard import IPNetwork, dns_resolver, parse_networks
from api_service.delivery.tlsrpt import PolicyType, ResultType, SessionCounter

log = logging.getLogger("postgate.delivery.tls")

# RFC 8461 §3.2: max_age is at most 31557600 s (a year); §3.3: a policy body of 64 KiB is plenty.
MAX_AGE_LIMIT = 31_557_600
POLICY_MAX_BYTES = 64 * 1024
POLICY_PATH = "/.well-known/mta-sts.txt"
# How long a failed fetch (no cached policy) is not retried for one domain: a broken policy host
# must not cost a timeout on every delivery to it.
FETCH_FAILURE_TTL = 300.0
# A domain without an _mta-sts record is asked again after this long, not on every delivery.
NO_POLICY_TTL = 60.0
# Domains whose policy (or its absence) is held in memory; beyond it the oldest half is forgotten
# (an enforce policy stays in the table, PolicyStore, and is read back when needed).
CACHE_DOMAINS = 50_000
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class Mode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class PolicyInvalid(ValueError):
    """An MTA-STS policy body that RFC 8461 §3.2 does not allow."""


@dataclass(frozen=True, slots=True)
class StsPolicy:
    id: str
    mode: Mode
    mx: tuple[str, ...]
    max_age: int
    text: str
    expires_at: float  # time.time() after which it is no longer used

    def lines(self) -> list[str]:
        """The policy as TLS-RPT's policy-string: one entry per line."""
        return [line.strip() for line in self.text.splitlines() if line.strip()]


def parse_sts_record(texts: Iterable[str]) -> str | None:
    """The `id` of the one `v=STSv1` TXT record among `texts` (RFC 8461 §3.1), else None (none, several, or malformed)."""
    found = [t for t in texts if t.startswith("v=STSv1")]
    if len(found) != 1:
        return None
    fields: dict[str, str] = {}
    for part in found[0].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    record_id = fields.get("id", "")
    return record_id if fields.get("v") == "STSv1" and _ID.match(record_id) else None


def parse_policy(body: bytes, *, policy_id: str, now: float | None = None) -> StsPolicy:
    """The policy file's body (RFC 8461 §3.2: `key: value` lines, CRLF or LF) → StsPolicy; raises PolicyInvalid."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise PolicyInvalid("the policy is not ASCII text") from None
    values: dict[str, list[str]] = {}
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            continue
        key, sep, value = raw.partition(":")
        if not sep or not key or key != key.strip():
            raise PolicyInvalid(f"not a 'key: value' line: {raw[:80]!r}")
        values.setdefault(key, []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise PolicyInvalid("version must be STSv1, once")
    modes = values.get("mode", [])
    if len(modes) != 1 or modes[0] not in {m.value for m in Mode}:
        raise PolicyInvalid("mode must be enforce, testing or none, once")
    mode = Mode(modes[0])
    ages = values.get("max_age", [])
    if len(ages) != 1 or not ages[0].isdigit() or len(ages[0]) > 10 or int(ages[0]) > MAX_AGE_LIMIT:
        raise PolicyInvalid(f"max_age must be one number of seconds up to {MAX_AGE_LIMIT}")
    mx = tuple(dict.fromkeys(p.lower().rstrip(".") for p in values.get("mx", [])))
    for pattern in mx:
        if not _valid_pattern(pattern):
            raise PolicyInvalid(f"not an MX host pattern: {pattern!r}")
    if mode is not Mode.NONE and not mx:
        raise PolicyInvalid("a policy in mode enforce or testing must list mx hosts")
    max_age = int(ages[0])
    return StsPolicy(id=policy_id, mode=mode, mx=mx, max_age=max_age, text=text, expires_at=(time.time() if now is None else now) + max_age)


def _valid_pattern(pattern: str) -> bool:
    labels = pattern.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels)


def mx_matches(host: str, pattern: str) -> bool:
    """RFC 8461 §4.1: an exact name, or `*.example.com` standing for exactly one leftmost label."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


# Per-destination overrides (settings and the policy file).


class Security(StrEnum):
    """Like Postfix's smtp_tls_security_level: may (opportunistic), encrypt (TLS required), verify (TLS with a verified certificate)."""

    MAY = "may"
    ENCRYPT = "encrypt"
    VERIFY = "verify"


@dataclass(frozen=True, slots=True)
class Override:
    security: Security
    # verify: names the certificate may carry; empty: the MX host's own name.
    names: tuple[str, ...] = ()


def parse_overrides(*, require: str, verify: str, policy_file: str) -> dict[str, Override]:
    """Destination domain → Override, from DELIVERY_TLS_REQUIRE, DELIVERY_TLS_VERIFY (comma-separated
    domains) and the `[tls."<domain>"]` tables of DELIVERY_POLICY_FILE (`security`, `names`). The
    file wins over the settings; ValueError says what is wrong."""
    found: dict[str, Override] = {}
    for value, security in ((require, Security.ENCRYPT), (verify, Security.VERIFY)):
        for item in value.split(","):
            if item.strip():
                found[item.strip().lower().rstrip(".")] = Override(security=security)
    if policy_file.strip():
        try:
            document = tomllib.loads(Path(policy_file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"DELIVERY_POLICY_FILE {policy_file!r} cannot be read: {exc}") from None
        section = document.get("tls", {})
        if not isinstance(section, dict):
            raise ValueError("DELIVERY_POLICY_FILE: [tls] must be a table of destination domains")
        for domain, table in section.items():
            found[str(domain).lower().rstrip(".")] = _override(str(domain), table)
    return found


def _override(domain: str, table: Any) -> Override:
    where = f'DELIVERY_POLICY_FILE [tls."{domain}"]'
    if not isinstance(table, dict) or set(table) - {"security", "names"}:
        raise ValueError(f"{where} takes security = 'may' | 'encrypt' | 'verify' and names = [...]")
    try:
        security = Security(table.get("security", "verify"))
    except ValueError:
        raise ValueError(f"{where}: security must be may, encrypt or verify") from None
    names = table.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{where}: names must be a list of host names")
    return Override(security=security, names=tuple(n.lower().rstrip(".") for n in names))


# DANE (RFC 7672, RFC 6698).


@dataclass(frozen=True, slots=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def text(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    def matches(self, certificate: x509.Certificate) -> bool:
        content = (
            certificate.public_bytes(Encoding.DER)
            if self.selector == 0
            else certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
        if self.mtype == 1:
            content = hashlib.sha256(content).digest()
        elif self.mtype == 2:
            content = hashlib.sha512(content).digest()
        return content == self.data


def usable(records: Iterable[Tlsa]) -> list[Tlsa]:
    """RFC 7672 §3.1.3: DANE-TA(2) and DANE-EE(3) with known selectors and matching types; PKIX-TA/EE are unusable for SMTP."""
    return [r for r in records if r.usage in (2, 3) and r.selector in (0, 1) and r.mtype in (0, 1, 2)]


def dane_failure(records: list[Tlsa], chain: list[x509.Certificate], *, host: str, now: datetime) -> str | None:
    """None when the chain the server sent satisfies a usable TLSA record, else why not.

    DANE-EE: the server's own certificate matches (RFC 7672 §3.1.1: names and dates ignored).
    DANE-TA: a certificate of the chain matches, and the server's certificate chains to it and
    names the MX host (§3.1.2)."""
    if not chain:
        return "the server sent no certificate"
    leaf = chain[0]
    if any(r.usage == 3 and r.matches(leaf) for r in records):
        return None
    anchors = [c for c in chain if any(r.usage == 2 and r.matches(c) for r in records)]
    for anchor in anchors:
        try:
            verifier = PolicyBuilder().store(Store([anchor])).time(now).build_server_verifier(x509.DNSName(host))
            verifier.verify(leaf, [c for c in chain[1:] if c != anchor])
        except (VerificationError, ValueError) as exc:
            return f"the chain does not verify to the DANE-TA trust anchor for {host}: {exc}"
        return None
    return "no certificate the server sent matches its TLSA records"


# What to do with one MX host.


class Check(StrEnum):
    PLAIN = "plain"  # no STARTTLS (the fallback after a failed handshake)
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, any certificate
    ENCRYPT = "encrypt"  # STARTTLS, any certificate
    PKIX = "pkix"  # certificate chain to a trusted CA, naming one of `names`
    DANE = "dane"  # a TLSA record matches


@dataclass(frozen=True, slots=True)
class Report:
    """The TLS-RPT policy a session counts under."""

    domain: str
    type: PolicyType
    strings: tuple[str, ...] = ()
    mx: tuple[str, ...] = ()
    # The policy itself could not be had (RFC 8460 sts-policy-fetch-error, sts-policy-invalid):
    # every session under it counts as failed for that reason, whatever its TLS did.
    failure: ResultType | None = None


@dataclass(frozen=True, slots=True)
class TlsPlan:
    host: str
    check: Check
    required: bool  # a failure defers the message instead of falling back
    source: str  # what decided: "", "mta-sts", "dane", "policy"; shown in message events
    names: tuple[str, ...] = ()
    tlsa: tuple[Tlsa, ...] = ()
    report: Report | None = None

    def fallback(self) -> TlsPlan | None:
        """The plan for the next connection after this one's TLS failed; None: give this address up."""
        if self.required:
            return None
        if self.check in (Check.PKIX, Check.DANE, Check.ENCRYPT):  # MTA-STS testing: reported, then as usual
            return replace(self, check=Check.OPPORTUNISTIC, report=None)
        if self.check is Check.OPPORTUNISTIC:
            return replace(self, check=Check.PLAIN, report=None)
        return None


OPPORTUNISTIC = Check.OPPORTUNISTIC


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    domain: str
    sts: StsPolicy | None = None
    override: Override | None = None
    fetch_error: ResultType | None = None  # the domain announced MTA-STS and the policy could not be had

    @property
    def enforced(self) -> bool:
        return self.sts is not None and self.sts.mode is Mode.ENFORCE

    def permits(self, host: str) -> bool:
        """RFC 8461 §4.1: in enforce mode only MX hosts the policy lists are used."""
        return not self.enforced or any(mx_matches(host, p) for p in self.sts.mx)  # type: ignore[union-attr]

    def report(self) -> Report:
        if self.sts is not None and self.sts.mode is not Mode.NONE:
            return Report(domain=self.domain, type=PolicyType.STS, strings=tuple(self.sts.lines()), mx=self.sts.mx)
        if self.fetch_error is not None:
            return Report(domain=self.domain, type=PolicyType.STS, failure=self.fetch_error)
        return Report(domain=self.domain, type=PolicyType.NONE)


@dataclass(frozen=True, slots=True)
class TlsResult:
    """How a session's TLS went; in the message events."""

    version: str = ""  # "TLSv1.3"; "" for plain text
    verified: bool = False
    source: str = ""

    def details(self) -> dict[str, str]:
        return {
            "TlsVersion": self.version or "none",
            "TlsVerified": "true" if self.verified else "false",
            "TlsPolicy": self.source or ("opportunistic" if self.version else "none"),
        }


class TlsRefused(Exception):
    """The plan forbids going on with this server: the message is deferred, not sent in clear."""

    def __init__(self, result: ResultType, detail: str) -> None:
        super().__init__(detail)
        self.result = result
        self.detail = detail


class PolicyCache(Protocol):
    """Where MTA-STS policies outlive the process (delivery.tls_tasks.PolicyStore: a table)."""

    async def load(self, domain: str) -> StsPolicy | None: ...

    async def save(self, domain: str, policy: StsPolicy) -> None: ...


@dataclass
class _Cached:
    policy: StsPolicy | None
    failed_until: float = 0.0
    error: ResultType | None = None


@dataclass
class TlsPolicy:
    """The delivery worker's TLS policy: settings, a cache of MTA-STS policies, the TLS-RPT counts."""

    resolver: Callable[[], dns.asyncresolver.Resolver]
    allowed: tuple[IPNetwork, ...] = ()
    ca_file: str = ""
    mta_sts: bool = True
    dane: bool = True
    overrides: dict[str, Override] = field(default_factory=dict)
    timeout: float = 20.0
    sessions: SessionCounter = field(default_factory=SessionCounter)
    store: PolicyCache | None = None
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _client: httpx.AsyncClient | None = None
    _locks: list[asyncio.Lock] = field(default_factory=lambda: [asyncio.Lock() for _ in range(64)])

    def verifying_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996; MTA-STS and DANE servers have it
        return context

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # RFC 8461 §3.3: redirects are not followed; the host is the recipient's to choose, so
            # it is guarded like an MX (MX_ALLOWED_NETWORKS).
            self._client = guarded_client(
                allowed=self.allowed,
                resolver=self.resolver(),
                timeout=self.timeout,
                max_redirects=0,
                setting="MX_ALLOWED_NETWORKS",
                ssl_context=self.verifying_context(),
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # The domain's policy.

    async def domain(self, domain: str) -> DomainPolicy:
        override = self.overrides.get(domain)
        if not self.mta_sts:
            return DomainPolicy(domain=domain, override=override)
        async with self._locks[hash(domain) % len(self._locks)]:  # one fetch per domain, however many deliveries wait for it
            cached = await self._sts(domain)
        return DomainPolicy(domain=domain, sts=cached.policy, override=override, fetch_error=cached.error)

    async def _sts(self, domain: str) -> _Cached:
        now = time.time()
        cached = self._cache.get(domain)
        if cached is None and self.store is not None:
            stored = await self.store.load(domain)
            cached = self._remember(domain, _Cached(policy=stored))
        if cached is not None and cached.policy is not None and cached.policy.expires_at <= now:
            cached = None
        if cached is not None and cached.failed_until > now:
            return cached
        record_id = await self._record_id(domain)
        if record_id is None:
            # RFC 8461 §5.1: a cached policy stays in force until it expires even when the record is
            # gone (or a lookup fails): stripping the TXT record must not downgrade the domain.
            if cached is not None and cached.policy is not None:
                return cached
            return self._remember(domain, _Cached(policy=None, failed_until=now + NO_POLICY_TTL))
        if cached is not None and cached.policy is not None and cached.policy.id == record_id:
            return cached
        try:
            policy = await self._fetch(domain, record_id)
        except (PolicyInvalid, _FetchFailed) as exc:
            error = ResultType.STS_POLICY_INVALID if isinstance(exc, PolicyInvalid) else exc.result
            log.warning("MTA-STS policy of %s: %s", domain, exc)
            keep = cached.policy if cached is not None else None
            return self._remember(domain, _Cached(policy=keep, failed_until=now + FETCH_FAILURE_TTL, error=None if keep else error))
        result = self._remember(domain, _Cached(policy=policy))
        if self.store is not None:
            await self.store.save(domain, policy)
        return result

    def _remember(self, domain: str, cached: _Cached) -> _Cached:
        if len(self._cache) >= CACHE_DOMAINS:
            for old in list(self._cache)[: CACHE_DOMAINS // 2]:
                del self._cache[old]
        self._cache.pop(domain, None)
        self._cache[domain] = cached
        return cached

    async def _record_id(self, domain: str) -> str | None:
        try:
            answer = await self.resolver().resolve(dns.name.from_text(f"_mta-sts.{domain}"), "TXT", search=False)
        except dns.exception.DNSException:
            return None
        texts = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
        return parse_sts_record(texts)

    async def _fetch(self, domain: str, record_id: str) -> StsPolicy:
        url = f"https://mta-sts.{domain}{POLICY_PATH}"
        try:
            # Raw bytes only (no Content-Encoding): the size cap must hold for what is read.
            async with asyncio.timeout(self.timeout), self.client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise PolicyInvalid(f"{url} came {response.headers['content-encoding']}-encoded")
                if response.status_code != 200:
                    raise _FetchFailed(f"{url} answered HTTP {response.status_code}")
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if media != "text/plain":
                    raise PolicyInvalid(f"{url} is {media or 'untyped'}, not text/plain")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > POLICY_MAX_BYTES:
                        raise PolicyInvalid(f"{url} is larger than {POLICY_MAX_BYTES} bytes")
        except (httpx.HTTPError, TimeoutError, ssl.SSLError, OSError) as exc:
            # RFC 8460: a policy host whose certificate does not verify is sts-webpki-invalid.
            webpki = _handshake_failure(exc) is not ResultType.VALIDATION_FAILURE
            raise _FetchFailed(
                f"fetching {url} failed: {_reason(exc)}", ResultType.STS_WEBPKI_INVALID if webpki else ResultType.STS_POLICY_FETCH_ERROR
            ) from None
        return parse_policy(bytes(body), policy_id=record_id)

    # One MX host.

    async def plan(self, policy: DomainPolicy, host: str) -> TlsPlan:
        if self.dane:
            records = await self._tlsa(host)
            if records is not None:
                report = Report(domain=policy.domain, type=PolicyType.TLSA, strings=tuple(r.text() for r in records), mx=(host,))
                if records:
                    return TlsPlan(host=host, check=Check.DANE, required=True, source="dane", tlsa=tuple(records), report=report)
                # RFC 7672 §3.1.3: secure TLSA records, none usable: TLS still mandatory, unauthenticated.
                return TlsPlan(host=host, check=Check.ENCRYPT, required=True, source="dane", report=report)
        report = policy.report()
        if policy.sts is not None and policy.sts.mode is not Mode.NONE:
            return TlsPlan(
                host=host, check=Check.PKIX, required=policy.enforced, source=f"mta-sts {policy.sts.mode}", names=(host,), report=report
            )
        override = policy.override
        if override is not None and override.security is Security.VERIFY:
            return TlsPlan(host=host, check=Check.PKIX, required=True, source="policy", names=override.names or (host,), report=report)
        if override is not None and override.security is Security.ENCRYPT:
            return TlsPlan(host=host, check=Check.ENCRYPT, required=True, source="policy", report=report)
        return TlsPlan(host=host, check=Check.OPPORTUNISTIC, required=False, source="", report=report)

    async def _tlsa(self, host: str) -> list[Tlsa] | None:
        """The usable TLSA records of `_25._tcp.<host>` when the resolver vouches for them (AD bit);
        None when there are none or they are not DNSSEC-authenticated (then DANE does not apply)."""
        resolver = self.resolver()
        try:
            name = dns.name.from_text(f"_25._tcp.{host}")
            answer = await resolver.resolve(name, "TLSA", search=False, raise_on_no_answer=False)
        except dns.exception.DNSException:
            return None
        if answer.rrset is None or not answer.response.flags & dns.flags.AD:
            return None
        return usable(Tlsa(usage=r.usage, selector=r.selector, mtype=r.mtype, data=bytes(r.cert)) for r in answer.rrset)

    # The handshake.

    def context(self, plan: TlsPlan) -> ssl.SSLContext:
        if plan.check is Check.PKIX:
            context = self.verifying_context()
            # The names are checked after the handshake, against the plan's list (one name: the MX's).
            context.check_hostname = False
            return context
        context = ssl.create_default_context()
        # Opportunistic TLS (RFC 3207), and DANE, which checks the chain itself after the handshake:
        # most MX certificates would not verify for the name we hold.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    async def starttls(self, client: aiosmtplib.SMTP, plan: TlsPlan, *, ip: str) -> TlsResult:
        """STARTTLS as `plan` says, after EHLO; raises TlsRefused when the plan forbids going on,
        aiosmtplib/OS errors of a failed handshake as they come (the caller falls back)."""
        if plan.check is Check.PLAIN:
            return TlsResult()
        sockname = client.transport.get_extra_info("sockname") if client.transport is not None else None
        local = str(sockname[0]) if sockname else ""
        if not client.supports_extension("starttls"):
            return self._plain(plan, ip, local, "the server does not offer STARTTLS")
        try:
            await client.starttls(server_hostname=plan.host, tls_context=self.context(plan))
        except aiosmtplib.SMTPResponseException as exc:
            return self._plain(plan, ip, local, f"the server refused STARTTLS ({exc.code} {exc.message})")
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            result = _handshake_failure(exc)
            self._count(plan, ip, local, result)
            if plan.required:
                raise TlsRefused(result, f"TLS handshake with {plan.host} failed: {_reason(exc)}") from exc
            raise
        sslobj = client.transport.get_extra_info("ssl_object") if client.transport is not None else None
        version = (sslobj.version() or "") if sslobj is not None else ""
        failure = self._verify(plan, sslobj)
        if failure is not None:
            result, detail = failure
            self._count(plan, ip, local, result)
            if plan.required:  # enforce (or DANE, or an override): defer
                raise TlsRefused(result, f"{plan.host}: {detail}")
            # MTA-STS testing: the session goes on, unverified; the report says why.
            log.info("TLS policy %s for %s: %s; delivering anyway", plan.source, plan.host, detail)
            return TlsResult(version=version, verified=False, source=plan.source)
        self._count(plan, ip, local, None)
        verified = plan.check in (Check.PKIX, Check.DANE)
        return TlsResult(version=version, verified=verified, source=plan.source)

    def _plain(self, plan: TlsPlan, ip: str, local: str, detail: str) -> TlsResult:
        self._count(plan, ip, local, ResultType.STARTTLS_NOT_SUPPORTED)
        if plan.required:
            raise TlsRefused(ResultType.STARTTLS_NOT_SUPPORTED, f"{plan.host}: {detail}; TLS is required")
        if plan.check is not Check.OPPORTUNISTIC:
            log.info("%s: %s (MTA-STS testing); going on in plain text", plan.host, detail)
        return TlsResult()

    def _verify(self, plan: TlsPlan, sslobj: Any) -> tuple[ResultType, str] | None:
        if plan.check is Check.PKIX:
            cert = sslobj.getpeercert() if sslobj is not None else None
            if not cert:
                return ResultType.CERTIFICATE_NOT_TRUSTED, "the server sent no certificate"
            if not any(_name_matches(cert, name) for name in plan.names):
                return ResultType.CERTIFICATE_HOST_MISMATCH, f"the certificate does not name {' or '.join(plan.names)}"
            return None
        if plan.check is Check.DANE:
            chain = _chain(sslobj)
            reason = dane_failure(list(plan.tlsa), chain, host=plan.host, now=datetime.now(UTC))
            return (ResultType.VALIDATION_FAILURE, reason) if reason else None
        return None

    def _count(self, plan: TlsPlan, ip: str, sending_ip: str, result: ResultType | None) -> None:
        if plan.report is None:
            return
        self.sessions.add(
            domain=plan.report.domain,
            policy_type=plan.report.type,
            strings=plan.report.strings,
            mx=plan.report.mx,
            result=plan.report.failure or result,
            receiving_mx=plan.host,
            receiving_ip=ip,
            sending_ip=sending_ip,
        )

    def refused_host(self, policy: DomainPolicy, host: str) -> None:
        """An MX the enforce policy does not list: counted as a failed session of that policy."""
        report = policy.report()
        self.sessions.add(
            domain=report.domain,
            policy_type=report.type,
            strings=report.strings,
            mx=report.mx,
            result=ResultType.VALIDATION_FAILURE,
            receiving_mx=host,
            receiving_ip="",
        )


class _FetchFailed(Exception):
    def __init__(self, detail: str, result: ResultType = ResultType.STS_POLICY_FETCH_ERROR) -> None:
        super().__init__(detail)
        self.result = result


def _handshake_failure(exc: BaseException) -> ResultType:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return ResultType.CERTIFICATE_EXPIRED
        if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return ResultType.CERTIFICATE_HOST_MISMATCH
        return ResultType.CERTIFICATE_NOT_TRUSTED
    return ResultType.VALIDATION_FAILURE


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    found = cause or exc
    return f"{type(found).__name__} {found}".strip()


def _name_matches(cert: dict[str, Any], name: str) -> bool:
    """RFC 6125 as MTA-STS uses it (RFC 8461 §4.2): a DNS subjectAltName equal to `name`, or a
    wildcard standing for its one leftmost label."""
    names = [value.lower() for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return any(mx_matches(name, n) if n.startswith("*.") else n == name.lower() for n in names)


def _chain(sslobj: Any) -> list[x509.Certificate]:
    """The certificates the server sent, its own first (not verified: DANE judges them)."""
    if sslobj is None:
        return []
    getter = getattr(sslobj, "get_unverified_chain", None) or getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            return [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER)) for c in getter() or []]  # type: ignore[attr-defined]
        except (ValueError, AttributeError):
            pass
    leaf = sslobj.getpeercert(binary_form=True)
    return [x509.load_der_x509_certificate(leaf)] if leaf else []


def tls_policy_from_settings(settings: Settings, *, store: PolicyCache | None = None) -> TlsPolicy:
    """The worker's policy: MTA-STS, DANE and overrides as configured; raises ValueError for a bad override."""
    resolver = dns_resolver(settings.dns_resolver)
    # RFC 6840 §5.7: the AD bit in the query asks a validating resolver to say whether it validated.
    resolver.flags = dns.flags.RD | dns.flags.AD
    return TlsPolicy(
        resolver=lambda: resolver,
        allowed=tuple(parse_networks(settings.mx_allowed_networks)),
        ca_file=settings.delivery_tls_ca_file,
        mta_sts=settings.delivery_mta_sts,
        dane=settings.delivery_dane,
        overrides=parse_overrides(
            require=settings.delivery_tls_require, verify=settings.delivery_tls_verify, policy_file=settings.delivery_policy_file
        ),
        timeout=settings.delivery_timeout_seconds,
        store=store,
    )
