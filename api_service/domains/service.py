"""Domain rules: a domain the operator adds covers every address on it at once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.domains import repository
from api_service.domains.dkim import generate_key
from api_service.errors import NotFound, PostmarkError
from api_service.models import Domain
from shared.constants import ErrorCode
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


async def create_domain(*, session: AsyncSession, data: DomainCreate) -> Domain:
    name = (data.Name or "").strip().lower().rstrip(".")
    if not name:
        raise PostmarkError(ErrorCode.DOMAIN_NAME_REQUIRED, "The domain Name is required.")
    if len(name) > 255:
        raise PostmarkError(ErrorCode.DOMAIN_NAME_TOO_LONG, "The domain Name must be at most 255 characters.")
    if not valid_domain_name(name):
        raise PostmarkError(ErrorCode.DOMAIN_NAME_INVALID, f"'{data.Name}' is not a valid domain name.")
    if await repository.get_domain_by_name(session=session, name=name) is not None:
        raise PostmarkError(ErrorCode.DOMAIN_EXISTS, "This domain already exists.")
    key = await asyncio.to_thread(generate_key)  # RSA key generation would block the loop for ~0.1 s
    domain = Domain(
        name=name,
        return_path_domain=clean_return_path(data.ReturnPathDomain, domain=name),
        dkim_selector=key.selector,
        dkim_private_key=key.private_pem,
        dkim_public_key=key.public_b64,
        dkim_verified=False,
        spf_verified=False,
        return_path_verified=False,
    )
    return await repository.add_domain(session=session, domain=domain)


async def get_domain_or_raise(*, session: AsyncSession, domain_id: int) -> Domain:
    domain = await repository.get_domain(session=session, domain_id=domain_id)
    if domain is None:
        raise NotFound(ErrorCode.DOMAIN_NOT_FOUND, f"Domain {domain_id} was not found.")
    return domain


async def edit_domain(*, session: AsyncSession, domain_id: int, data: DomainEdit) -> Domain:
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    if data.ReturnPathDomain is not None:
        domain.return_path_domain = clean_return_path(data.ReturnPathDomain, domain=domain.name)
    await session.flush()
    return domain


async def delete_domain(*, session: AsyncSession, domain_id: int) -> str:
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    name = domain.name
    await repository.delete_domain(session=session, domain=domain)
    return name


TxtLookup = Callable[[str], Awaitable[list[str]]]


async def dns_txt(name: str) -> list[str]:
    """The TXT records of a name (joined strings), or none when it has none or DNS fails."""
    try:
        answer = await dns.asyncresolver.resolve(name, "TXT")
    except dns.exception.DNSException:
        return []
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def published_key(records: list[str]) -> str:
    for record in records:
        fields = dict(part.strip().split("=", 1) for part in record.split(";") if "=" in part)
        if "p" in fields:
            return "".join(fields["p"].split())
    return ""


async def verify_dkim(*, session: AsyncSession, domain_id: int, lookup: TxtLookup = dns_txt) -> Domain:
    """Look up the selector's TXT record and mark DKIM verified when it holds our public key."""
    domain = await get_domain_or_raise(session=session, domain_id=domain_id)
    records = await lookup(f"{domain.dkim_selector}._domainkey.{domain.name}")
    domain.dkim_verified = bool(domain.dkim_public_key) and published_key(records) == domain.dkim_public_key
    await session.flush()
    return domain


@dataclass(frozen=True, slots=True)
class SigningKey:
    domain: str
    selector: str
    private_pem: str


async def signing_keys(*, session: AsyncSession, domains: set[str]) -> dict[str, SigningKey]:
    """The DKIM key of each of these domains that has one."""
    found = await repository.signing_keys(session=session, names=domains)
    return {name: SigningKey(domain=name, selector=selector, private_pem=pem) for name, (selector, pem) in found.items()}


async def list_domains(*, session: AsyncSession, count: int, offset: int) -> tuple[int, list[Domain]]:
    return await repository.list_domains(session=session, count=count, offset=offset)
