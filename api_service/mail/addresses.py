"""Parsing of address fields: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from email.errors import HeaderParseError, ObsoleteHeaderDefect
from email.headerregistry import Address, HeaderRegistry
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from shared.constants import MAX_ADDRESS_FIELD_CHARS


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str
    email: str

    def header(self) -> Address:
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)


_REGISTRY = HeaderRegistry()
MAX_ADDRESS_ITEM_CHARS = 1_000
MAX_COMMENT_DEPTH = 8
# The characters of one field that may go through the full parser (quoting, comments, groups):
# a few unusual addresses, never a field-long worst case.
FULL_PARSER_BUDGET_CHARS = 4_000
CACHED_FIELD_CHARS = 1_000


class AddressError(ValueError):
    """An address field that cannot be used; the message names the culprit."""


@lru_cache(maxsize=65536)
def normalise_email(address: str) -> str | None:
    """The address if it is a syntactically valid mailbox, else None. An internationalised domain
    comes back in its IDNA (ASCII, `xn--`) form, which is how it is stored, shown and delivered to;
    a local part that is not ASCII is not accepted (it would need SMTPUTF8 all the way)."""
    address = address.strip()
    if not address or any(c in address for c in '\r\n\x00<>"') or len(address) > 320:
        return None
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.ascii_email or result.normalized


NON_ASCII_LOCAL_PART = "the part before the @ is not ASCII; such mailboxes need SMTPUTF8, which Postgate does not accept"


def parse_address_list(value: str) -> list[Mailbox]:
    """Split a comma-separated address field (`"Name, Jr." <a@b.c>, d@e.f`) into mailboxes; the
    members of a group (`team: a@b.c, d@e.f;`) are listed like the others.

    Linear in the length of the field: one pass splits it into items (quotes, comments, angle
    brackets and groups respected), the common shapes are read without a regular expression, and
    only an item of at most MAX_ADDRESS_ITEM_CHARS reaches the standard library's parser (whose
    cost grows with the square of its input). Longer fields and items are refused unread.
    """
    if len(value) > MAX_ADDRESS_FIELD_CHARS:
        raise AddressError(f"the field is longer than {MAX_ADDRESS_FIELD_CHARS} characters")
    if len(value) <= CACHED_FIELD_CHARS:
        return list(_parse_cached(value))
    return list(_parse_address_list(value))


@lru_cache(maxsize=8192)
def _parse_cached(value: str) -> tuple[Mailbox, ...]:
    return _parse_address_list(value)


def _parse_address_list(value: str) -> tuple[Mailbox, ...]:
    if any(c in value for c in "\r\n\x00"):
        raise AddressError(value[:100])
    mailboxes: list[Mailbox] = []
    budget = FULL_PARSER_BUDGET_CHARS
    for item in split_items(value):
        if len(item) > MAX_ADDRESS_ITEM_CHARS:
            raise AddressError(f"an address with its name is longer than {MAX_ADDRESS_ITEM_CHARS} characters")
        simple = _parse_simple_item(item)
        if simple is not None:
            mailboxes.append(simple)
            continue
        budget -= len(item)
        if budget < 0:
            raise AddressError(f"more than {FULL_PARSER_BUDGET_CHARS} characters of quoted names, comments or groups")
        mailboxes.extend(_parse_full(item))
    return tuple(mailboxes)


def split_items(value: str) -> list[str]:
    """The items of an address list, split at the commas outside quotes, comments and angle
    brackets; a group's members are items of their own (its name and `;` dropped). One pass."""
    items: list[str] = []
    start = 0
    quoted = angle = group = False
    depth = 0
    index, length = 0, len(value)
    while index < length:
        char = value[index]
        if quoted or depth:
            if char == "\\":
                index += 2
                continue
            if quoted and char == '"':
                quoted = False
            elif depth and char == "(":
                depth += 1
                if depth > MAX_COMMENT_DEPTH:
                    raise AddressError(f"comments nested deeper than {MAX_COMMENT_DEPTH}")
            elif depth and char == ")":
                depth -= 1
        elif char == '"':
            quoted = True
        elif char == "(":
            depth = 1
        elif angle:
            angle = char != ">"
        elif char == "<":
            angle = True
        elif char == ":" and not group:
            name = value[start:index].strip()
            if not name or "@" in name:
                raise AddressError(value[start:index][:100] or value[:100])
            group, start = True, index + 1
        elif char == ";" and group:
            items.append(value[start:index])
            group, start = False, index + 1
        elif char == ",":
            items.append(value[start:index])
            start = index + 1
        index += 1
    if quoted or depth or angle or group:
        raise AddressError(value[start:][:100] or value[:100])
    items.append(value[start:])
    return [item for item in items if item.strip(" \t")]


_NOT_SIMPLE = frozenset('"()\\;:[],')
_SPACE = frozenset(" \t")


def _parse_full(item: str) -> list[Mailbox]:
    """One item through the standard library's RFC 5322 parser."""
    try:
        header = _REGISTRY("To", item)
        parsed = header.addresses  # type: ignore[attr-defined]
    except (HeaderParseError, IndexError, ValueError, RecursionError):
        raise AddressError(item.strip()[:100]) from None
    # Obsolete syntax (a period in an unquoted name: "John Q. Public") is accepted everywhere.
    if not parsed or any(not isinstance(d, ObsoleteHeaderDefect) for d in header.defects):
        raise AddressError(item.strip()[:100])
    return [_mailbox(address.display_name, address.addr_spec, item) for address in parsed]


def _parse_simple_item(item: str) -> Mailbox | None:
    """`a@b.c` or `Name <a@b.c>` without quoting, comments or groups; None for anything else."""
    if any(c in _NOT_SIMPLE for c in item):
        return None
    text = item.strip(" \t")
    if text.endswith(">"):
        open_at = text.find("<")
        if open_at < 0 or text.count("<") != 1 or text.count(">") != 1:
            return None
        name, address = text[:open_at], text[open_at + 1 : -1]
    else:
        if "<" in text or ">" in text:
            return None
        name, address = "", text
    if not address or any(c in _SPACE for c in address):
        return None
    return _mailbox(name, address, item)


def _parse_simple(value: str) -> tuple[Mailbox, ...] | None:
    """The whole field through the simple shapes only; None when an item needs the full parser."""
    mailboxes = []
    for item in split_items(value):
        mailbox = _parse_simple_item(item)
        if mailbox is None:
            return None
        mailboxes.append(mailbox)
    return tuple(mailboxes)


def _mailbox(name: str, addr_spec: str, value: str) -> Mailbox:
    email = normalise_email(addr_spec)
    if email is None:
        if not addr_spec.rpartition("@")[0].isascii():
            raise AddressError(f"{addr_spec[:100]}: {NON_ASCII_LOCAL_PART}")
        raise AddressError(addr_spec[:100] or value[:100])
    return Mailbox(name=" ".join(name.split()), email=email)


def parse_mailbox(value: str) -> Mailbox:
    mailboxes = parse_address_list(value)
    if len(mailboxes) != 1:
        raise AddressError(value)
    return mailboxes[0]


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()
