"""Parsing of address fields: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from email.errors import HeaderParseError
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
    """Split a comma-separated address field (`"Name, Jr." <a@b.c>, d@e.f`) into mailboxes."""
    if any(c in value for c in "\r\n\x00"):
        raise AddressError(value)
    if not value.strip(" ,\t"):
        return []
    try:
        header = _REGISTRY("To", value)
        parsed = header.addresses  # type: ignore[attr-defined]
    except (HeaderParseError, IndexError, ValueError):
        raise AddressError(value) from None
    if header.defects or not parsed:
        raise AddressError(value)
    mailboxes = []
    for address in parsed:
        email = normalise_email(address.addr_spec)
        if email is None:
            raise AddressError(address.addr_spec or value)
        mailboxes.append(Mailbox(name=address.display_name.strip(), email=email))
    return mailboxes


def parse_mailbox(value: str) -> Mailbox:
    mailboxes = parse_address_list(value)
    if len(mailboxes) != 1:
        raise AddressError(value)
    return mailboxes[0]


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()
