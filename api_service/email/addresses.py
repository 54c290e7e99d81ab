"""Parsing of address fields: pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import HeaderParseError, ObsoleteHeaderDefect
from email.headerregistry import Address, HeaderRegistry
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str
    email: str

    def header(self) -> Address:
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)


_REGISTRY = HeaderRegistry()


class AddressError(ValueError):
    """An address field that cannot be used; the message names the culprit."""


@lru_cache(maxsize=65536)
def normalise_email(address: str) -> str | None:
    """The address if it is a syntactically valid mailbox, else None."""
    address = address.strip()
    if not address or any(c in address for c in '\r\n\x00<>"') or len(address) > 320:
        return None
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.normalized


def parse_address_list(value: str) -> list[Mailbox]:
    """Split a comma-separated address field (`"Name, Jr." <a@b.c>, d@e.f`) into mailboxes; the
    members of a group (`team: a@b.c, d@e.f;`) are listed like the others."""
    return list(_parse_address_list(value))


@lru_cache(maxsize=8192)
def _parse_address_list(value: str) -> tuple[Mailbox, ...]:
    if any(c in value for c in "\r\n\x00"):
        raise AddressError(value)
    if not value.strip(" ,\t"):
        return ()
    simple = _parse_simple(value)
    if simple is not None:
        return simple
    try:
        header = _REGISTRY("To", value)
        parsed = header.addresses  # type: ignore[attr-defined]
    except (HeaderParseError, IndexError, ValueError):
        raise AddressError(value) from None
    # Obsolete syntax (a period in an unquoted name: "John Q. Public") is accepted everywhere.
    if any(not isinstance(d, ObsoleteHeaderDefect) for d in header.defects):
        raise AddressError(value)
    # RFC 5322 group syntax is valid; an empty group (`undisclosed-recipients:;`, what mail
    # programs write when every recipient is in Bcc) names nobody.
    if not parsed and not any(group.display_name is not None for group in header.groups):  # type: ignore[attr-defined]
        raise AddressError(value)
    return tuple(_mailbox(address.display_name, address.addr_spec, value) for address in parsed)


# The common shapes, `a@b.c` and `Name <a@b.c>`, without RFC 5322's quoting, comments or groups;
# anything else goes through the full parser.
_SIMPLE_ITEM = re.compile(r"^\s*(?:([^<>]*?)\s*<([^<>\s]+)>|([^<>\s]+))\s*$")
_NOT_SIMPLE = frozenset('"()\\;:[]')


def _parse_simple(value: str) -> tuple[Mailbox, ...] | None:
    if any(c in _NOT_SIMPLE for c in value):
        return None
    mailboxes = []
    for item in value.split(","):
        if not item.strip():
            continue
        match = _SIMPLE_ITEM.match(item)
        if match is None:
            return None
        name, bracketed, bare = match.groups()
        mailboxes.append(_mailbox(name or "", bracketed or bare, value))
    return tuple(mailboxes)


def _mailbox(name: str, addr_spec: str, value: str) -> Mailbox:
    email = normalise_email(addr_spec)
    if email is None:
        raise AddressError(addr_spec or value)
    return Mailbox(name=" ".join(name.split()), email=email)


def parse_mailbox(value: str) -> Mailbox:
    mailboxes = parse_address_list(value)
    if len(mailboxes) != 1:
        raise AddressError(value)
    return mailboxes[0]


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()
