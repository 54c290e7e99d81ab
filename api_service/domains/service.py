"""Domain rules: a domain covers every address on it once confirmed (SENDER_AUTO_CONFIRM, or its
DKIM record seen in DNS); DKIM keys, their safe rotation, and the DNS checks."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.cache import TtlCache
from api_service.domains import repository, spf
from api_service.domains.dkim import generate_ed25519_key, generate_key, published_key
from api_service.domains.dns import DnsLookup
from api_service.errors import NotFound, PostmarkError
from api_service.models import Domain
from shared.constants import DkimUpdateStatus, ErrorCode
from shared.schemas.senders import DomainCreate, DomainEdit

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def valid_domain_name(name: str) -> bool:
    labels = name.split(".")
    return len(labels) >= 2 and all(LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def clean_return_path(value: str | None, *, domain: str) -> str:
    value = (value or "").strip().lower()
    if value and (not valid_domain_name(value) or not value.endswith("." + domain)):
        raise PostmarkError(ErrorCode.DOMAIN_INVALID_FIELDS, f"ReturnPathDomain must be a subdomain of {domain}.")
    return value


def clean_tracking_domain(value: str | None, *, domain: str, return_path: str) -> str:
    value = (value or "").strip().lower().rstrip(".")
    if value and (not valid_domain_name(value) or not value.endswith("." + domain) or len(value) > 255):
        raise PostmarkError(ErrorCode.DOMAIN_INVALID_FIELDS, f"TrackingDomain must be a subdomain of {domain}.")
    if value and value == return_path:  # one name cannot be a CNAME of two hosts
        raise PostmarkError(ErrorCode.DOMAIN_INVALID_FIELDS, "TrackingDomain must differ from ReturnPathDomain.")
    return value


async def create_domain(*, session: AsyncSession, data: DomainCreate, auto_confirm: bool) -> Domain:
    name = (data.Name or "").strip().lower().rstrip(".")
    if not name:
        raise PostmarkError(ErrorCode.DOMAIN_NAME_REQUIRED, "The domain Name is required.")
    if len(name) > 255:
        raise PostmarkError(ErrorCode.DOMAIN_NAME_TOO_LONG, "The domain Name must be at most 255 characters.")
    if not valid_domain_name(name):
        raise PostmarkError(ErrorCode.DOMAIN_NAME_INVALID, f"'{data.Name}' is not a valid domain name.")
    if await repository.get_domain_by_name(session=session, name=name) is not None:
        raise PostmarkError(ErrorCode.DOMAIN_EXISTS, "This domain already exists.")
    return_path = clean_return_path(data.ReturnPathDomain, domain=name)
    tracking = clean_tracking_domain(data.TrackingDomain, domain=name, return_path=return_path)
    key = await asyncio.to_thread(generate_key)  # RSA key generation would block the loop for ~0.1 s
    domain = Domain(
        name=name,
        return_path_domain=return_path,
        tracking_domain=tracking,
        tracking_verified=False,
        dkim_selector=key.selector,
        dkim_private_key=key.private_pem,
        dkim_public_key=key.public_b64,
        dkim_verified=False,
        spf_verified=False,
        return_path_verified=False,
        confirmed=auto_confirm,
    )
    if data.DKIMEd25519:
        _add_ed25519_key(domain)
    return await repository.add_domain(session=session, domain=domain)


async def get_domain_or_raise(*, session: AsyncSession, domain_id: int, for_update: bool = False) -> Domain:
    domain = await repository.get_domain(session=session, domain_id=domain_id, for_update=for_update)
    if domain is None:
        raise NotFound(ErrorCode.DOMAIN_NOT_FOUND, f"Domain {domain_id} was not found.")
    return domain


async def edit_domain(*, session: AsyncSession, domain_id: int, data: DomainEdit) -> Domain:
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    if data.ReturnPathDomain is not None:
        return_path = clean_return_path(data.ReturnPathDomain, domain=domain.name)
        if return_path != domain.return_path_domain:
            domain.return_path_domain, domain.return_path_verified = return_path, False
    if data.TrackingDomain is not None:
        tracking = clean_tracking_domain(data.TrackingDomain, domain=domain.name, return_path=domain.return_path_domain)
        if tracking != domain.tracking_domain:
            domain.tracking_domain, domain.tracking_verified = tracking, False
            TRACKING_HOSTS.clear()
    elif domain.tracking_domain and domain.tracking_domain == domain.return_path_domain:
        raise PostmarkError(ErrorCode.DOMAIN_INVALID_FIELDS, "ReturnPathDomain must differ from TrackingDomain.")
    if data.DKIMEd25519 is True and not domain.dkim_ed25519_selector:
        _add_ed25519_key(domain)
        domain.dkim_checked_at = None  # the worker looks for it at its next round
    elif data.DKIMEd25519 is False and domain.dkim_ed25519_selector:
        _drop_ed25519_key(domain, now=datetime.now(UTC))
    await session.flush()
    return domain


async def delete_domain(*, session: AsyncSession, domain_id: int) -> str:
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    name = domain.name
    await repository.delete_domain(session=session, domain=domain)
    TRACKING_HOSTS.clear()
    return name


# A revoked key may still be needed by a receiver that checks a message again later (a forward,
# a delayed scan); Postmark too keeps it some time before it says the record may go.
REVOKED_KEY_GRACE = timedelta(days=7)


def dkim_host(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}" if selector else ""


def dkim_value(public_key: str) -> str:
    return f"k=rsa;p={public_key}" if public_key else ""


def dkim_ed25519_value(public_key: str) -> str:
    return f"k=ed25519;p={public_key}" if public_key else ""


def update_status(domain: Domain) -> DkimUpdateStatus:
    pending = domain.dkim_pending_selector or domain.dkim_ed25519_pending_selector
    return DkimUpdateStatus.PENDING if pending else DkimUpdateStatus.REGULAR


def _selectors(domain: Domain) -> set[str]:
    return {
        domain.dkim_selector,
        domain.dkim_revoked_selector,
        domain.dkim_ed25519_selector,
        domain.dkim_ed25519_pending_selector,
        domain.dkim_ed25519_revoked_selector,
    } - {""}


def _add_ed25519_key(domain: Domain) -> None:
    """Give the domain an Ed25519 key: it signs once its record is seen in DNS (a signature whose key
    receivers cannot find would only be a failing signature beside the RSA one)."""
    key = generate_ed25519_key(taken=_selectors(domain))
    domain.dkim_ed25519_selector, domain.dkim_ed25519_private_key, domain.dkim_ed25519_public_key = (
        key.selector,
        key.private_pem,
        key.public_b64,
    )
    domain.dkim_ed25519_verified = False


def _drop_ed25519_key(domain: Domain, *, now: datetime) -> None:
    """Stop signing with Ed25519: its key is revoked (its record may go after the grace period)."""
    if domain.dkim_ed25519_verified:
        domain.dkim_ed25519_revoked_selector, domain.dkim_ed25519_revoked_public_key = (
            domain.dkim_ed25519_selector,
            domain.dkim_ed25519_public_key,
        )
        domain.dkim_ed25519_revoked_at = now
    domain.dkim_ed25519_selector = domain.dkim_ed25519_private_key = domain.dkim_ed25519_public_key = ""
    domain.dkim_ed25519_pending_selector = domain.dkim_ed25519_pending_private_key = domain.dkim_ed25519_pending_public_key = ""
    domain.dkim_ed25519_verified = False


def safe_to_remove_revoked_ed25519_key(domain: Domain, *, now: datetime) -> bool:
    revoked_at = domain.dkim_ed25519_revoked_at
    return bool(domain.dkim_ed25519_revoked_selector) and revoked_at is not None and revoked_at + REVOKED_KEY_GRACE <= now


def _promote_pending_ed25519_key(domain: Domain, *, now: datetime) -> None:
    domain.dkim_ed25519_revoked_selector, domain.dkim_ed25519_revoked_public_key = (
        domain.dkim_ed25519_selector,
        domain.dkim_ed25519_public_key,
    )
    domain.dkim_ed25519_revoked_at = now
    domain.dkim_ed25519_selector, domain.dkim_ed25519_private_key, domain.dkim_ed25519_public_key = (
        domain.dkim_ed25519_pending_selector,
        domain.dkim_ed25519_pending_private_key,
        domain.dkim_ed25519_pending_public_key,
    )
    domain.dkim_ed25519_pending_selector = domain.dkim_ed25519_pending_private_key = domain.dkim_ed25519_pending_public_key = ""
    domain.dkim_ed25519_verified = True


async def _check_ed25519(*, domain: Domain, dns: DnsLookup, now: datetime) -> None:
    if domain.dkim_ed25519_pending_selector:
        records = await dns.txt(dkim_host(domain.dkim_ed25519_pending_selector, domain.name))
        if published_key(records) == domain.dkim_ed25519_pending_public_key:
            _promote_pending_ed25519_key(domain, now=now)
    if domain.dkim_ed25519_selector and not domain.dkim_ed25519_verified:
        records = await dns.txt(dkim_host(domain.dkim_ed25519_selector, domain.name))
        domain.dkim_ed25519_verified = published_key(records) == domain.dkim_ed25519_public_key


def safe_to_remove_revoked_key(domain: Domain, *, now: datetime) -> bool:
    return bool(domain.dkim_revoked_selector) and domain.dkim_revoked_at is not None and domain.dkim_revoked_at + REVOKED_KEY_GRACE <= now


def _promote_pending_key(domain: Domain, *, now: datetime) -> None:
    """The pending key is in DNS: it signs from now on, and the one it replaces is revoked."""
    domain.dkim_revoked_selector, domain.dkim_revoked_public_key, domain.dkim_revoked_at = domain.dkim_selector, domain.dkim_public_key, now
    domain.dkim_selector, domain.dkim_private_key, domain.dkim_public_key = (
        domain.dkim_pending_selector,
        domain.dkim_pending_private_key,
        domain.dkim_pending_public_key,
    )
    domain.dkim_pending_selector = domain.dkim_pending_private_key = domain.dkim_pending_public_key = ""


async def check_dkim(*, domain: Domain, dns: DnsLookup, now: datetime) -> None:
    """Look the domain's keys up in DNS: a published pending key replaces the signing key (which
    signs until then); a published signing key verifies the domain, which may then send.
    `DKIMVerified` stays true once seen, as in Postmark."""
    if domain.dkim_pending_selector:
        records = await dns.txt(dkim_host(domain.dkim_pending_selector, domain.name))
        if published_key(records) == domain.dkim_pending_public_key:
            _promote_pending_key(domain, now=now)
            domain.dkim_verified = domain.confirmed = True
    if not domain.dkim_verified and domain.dkim_public_key:
        records = await dns.txt(dkim_host(domain.dkim_selector, domain.name))
        if published_key(records) == domain.dkim_public_key:
            domain.dkim_verified = domain.confirmed = True
    await _check_ed25519(domain=domain, dns=dns, now=now)
    domain.dkim_checked_at = now


async def verify_dkim(*, session: AsyncSession, domain_id: int, dns: DnsLookup) -> Domain:
    """Look the DKIM keys up now (see `check_dkim`)."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id, for_update=True)
    await check_dkim(domain=domain, dns=dns, now=datetime.now(UTC))
    await session.flush()
    return domain


async def rotate_dkim(*, session: AsyncSession, domain_id: int) -> Domain:
    """Make a new key; it waits in DKIMPending* until DNS publishes it, and the current key signs until then."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id, for_update=True)
    if domain.dkim_pending_selector or domain.dkim_ed25519_pending_selector:
        raise PostmarkError(
            ErrorCode.DKIM_RENEWAL_SCHEDULED,
            f"A new DKIM key for {domain.name} is already waiting: publish DKIMPendingHost, then verify it with PUT /domains/{domain.id}/verifyDkim.",
        )
    key = await asyncio.to_thread(generate_key, taken={domain.dkim_selector, domain.dkim_revoked_selector})
    domain.dkim_pending_selector, domain.dkim_pending_private_key, domain.dkim_pending_public_key = (
        key.selector,
        key.private_pem,
        key.public_b64,
    )
    if domain.dkim_ed25519_selector:  # rotated together: one DNS change publishes both new keys
        ed = generate_ed25519_key(taken=_selectors(domain))
        domain.dkim_ed25519_pending_selector, domain.dkim_ed25519_pending_private_key, domain.dkim_ed25519_pending_public_key = (
            ed.selector,
            ed.private_pem,
            ed.public_b64,
        )
    domain.dkim_checked_at = None  # the worker looks for it at its next round
    await session.flush()
    return domain


async def rotate_dkim_for(*, session: AsyncSession, name: str) -> Domain | None:
    """Rotate the key of the domain of this name (a sender signature's), or None when there is no such domain."""
    domain = await repository.get_domain_by_name(session=session, name=name)
    return None if domain is None else await rotate_dkim(session=session, domain_id=domain.id)


async def verify_return_path(*, session: AsyncSession, domain_id: int, dns: DnsLookup, target: str) -> Domain:
    """The return-path host is a CNAME of `target` (RETURN_PATH_DOMAIN), or has an MX that `target`
    or its MX hosts are: either way bounces mailed to it reach Postgate's inbound listener."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    domain.return_path_verified = bool(domain.return_path_domain) and await return_path_reaches(
        domain.return_path_domain, dns=dns, target=target
    )
    await session.flush()
    return domain


async def return_path_reaches(host: str, *, dns: DnsLookup, target: str) -> bool:
    target = target.rstrip(".").lower()
    if await dns.cname(host) == target:
        return True
    exchanges = set(await dns.mx(host))
    return bool(exchanges) and bool(exchanges & ({target} | set(await dns.mx(target))))


async def verify_tracking_domain(*, session: AsyncSession, domain_id: int, dns: DnsLookup, target: str) -> Domain:
    """The tracking domain is a CNAME of `target` (the host of TRACKING_BASE_URL): its open and click
    URLs then reach Postgate, and the domain's mail uses it."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    target = target.rstrip(".").lower()
    domain.tracking_verified = bool(domain.tracking_domain) and bool(target) and await dns.cname(domain.tracking_domain) == target
    TRACKING_HOSTS.clear()
    await session.flush()
    return domain


# Asked by the TLS proxy for every new name it sees (Caddy's on-demand `ask`): anyone can make it
# ask, so answers are remembered a minute, per process (a change made through another process
# shows after at most that long; one made here clears it).
TRACKING_HOSTS: TtlCache[bool] = TtlCache(60.0)


async def is_tracking_host(*, session: AsyncSession, host: str) -> bool:
    """Whether `host` is a verified tracking domain."""
    host = host.strip().lower().rstrip(".")
    if not host or len(host) > 253 or not valid_domain_name(host):
        return False
    known = TRACKING_HOSTS.get(host)
    if known is None:
        known = await repository.is_verified_tracking_domain(session=session, host=host)
        TRACKING_HOSTS.put(host, known)
    return known


async def verify_spf(*, session: AsyncSession, domain_id: int, dns: DnsLookup, wanted: str) -> Domain:
    """SPFVerified: the domain publishes one SPF record with the mechanisms of `wanted` (SPF_TEXT_VALUE)."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    domain.spf_verified = spf.covers(await dns.txt(domain.name), wanted)
    await session.flush()
    return domain


@dataclass(frozen=True, slots=True)
class CnameTargets:
    """What a ReturnPathDomain (RETURN_PATH_DOMAIN) and a TrackingDomain (the host of TRACKING_BASE_URL) point at."""

    return_path: str
    tracking: str


async def check_records(*, domain: Domain, dns: DnsLookup, now: datetime, targets: CnameTargets | None) -> None:
    """The worker's look-ups of one domain: its DKIM keys, and (given `targets`) a return-path or
    tracking domain not verified yet, which is verified as soon as DNS has it, as a DKIM key is."""
    await check_dkim(domain=domain, dns=dns, now=now)
    if targets is None:
        return
    if domain.return_path_domain and not domain.return_path_verified:
        domain.return_path_verified = await return_path_reaches(domain.return_path_domain, dns=dns, target=targets.return_path)
    if domain.tracking_domain and not domain.tracking_verified and targets.tracking:
        domain.tracking_verified = await dns.cname(domain.tracking_domain) == targets.tracking.rstrip(".").lower()
        if domain.tracking_verified:
            TRACKING_HOSTS.clear()


async def check_due(
    *, session: AsyncSession, dns: DnsLookup, checked_before: datetime, limit: int, targets: CnameTargets | None = None
) -> int:
    """The worker's round: re-check the DNS of domains with a pending key or an unverified one (or,
    given `targets`, an unverified return-path or tracking domain), each at most once per interval;
    returns how many were checked."""
    domains = await repository.claim_dns_checks(session=session, checked_before=checked_before, limit=limit, cnames=targets is not None)
    now = datetime.now(UTC)
    await asyncio.gather(*(check_records(domain=d, dns=dns, now=now, targets=targets) for d in domains))
    await session.flush()
    return len(domains)


async def get_domain_by_name(*, session: AsyncSession, name: str) -> Domain | None:
    return await repository.get_domain_by_name(session=session, name=name)


@dataclass(frozen=True, slots=True)
class SigningKey:
    domain: str
    selector: str
    private_pem: str
    ed25519_selector: str = ""
    ed25519_key: str = ""
    """The Ed25519 key signing beside the RSA one (once seen in DNS), "" without one."""


async def signing_keys(*, session: AsyncSession, domains: set[str]) -> dict[str, SigningKey]:
    """The DKIM key of each of these domains that has one."""
    found = await repository.signing_keys(session=session, names=domains)
    return {name: SigningKey(domain=name, selector=selector, private_pem=pem) for name, (selector, pem) in found.items()}


@dataclass(frozen=True, slots=True)
class SendingDomain:
    """What delivery needs of a message's From domain: the key that signs its mail and the
    envelope domain its return paths use (its verified ReturnPathDomain, "" for RETURN_PATH_DOMAIN)."""

    name: str
    key: SigningKey | None
    return_path_domain: str
    tracking_base_url: str = ""
    """`https://<TrackingDomain>` once verified, "" for TRACKING_BASE_URL."""


def sending_domain(domain: Domain) -> SendingDomain:
    key = None
    if domain.dkim_private_key:
        ed25519 = domain.dkim_ed25519_verified and bool(domain.dkim_ed25519_private_key)
        key = SigningKey(
            domain=domain.name,
            selector=domain.dkim_selector,
            private_pem=domain.dkim_private_key,
            ed25519_selector=domain.dkim_ed25519_selector if ed25519 else "",
            ed25519_key=domain.dkim_ed25519_private_key if ed25519 else "",
        )
    # SPF aligns (relaxed, RFC 7489 §3.1.2) only when the envelope domain shares the From's organisational
    # domain; clean_return_path keeps ReturnPathDomain a subdomain of the domain, so a verified one does.
    return_path = domain.return_path_domain if domain.return_path_verified else ""
    tracking = f"https://{domain.tracking_domain}" if domain.tracking_verified and domain.tracking_domain else ""
    return SendingDomain(name=domain.name, key=key, return_path_domain=return_path, tracking_base_url=tracking)


async def sending_domains(*, session: AsyncSession, domains: set[str]) -> dict[str, SendingDomain]:
    """The signing key and return-path domain of each of these domains that Postgate knows."""
    return {d.name: sending_domain(d) for d in await repository.sending_domains(session=session, names=domains)}


async def verified_return_paths(*, session: AsyncSession) -> list[str]:
    """Every verified ReturnPathDomain: the MX listener takes reports mailed to them."""
    return await repository.verified_return_paths(session=session)


async def list_domains(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[Domain]]:
    return await repository.list_domains(session=session, count=count, offset=offset)
