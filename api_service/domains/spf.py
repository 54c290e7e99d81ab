"""Is a domain's published SPF record the one Postgate asked for? Pure functions.

Postgate cannot evaluate SPF for its own outbound address (behind NAT or a relay it does not know
it), so `covers` checks the record instead: the domain publishes exactly one `v=spf1` record
(RFC 7208 §4.5: more than one is an error) holding every mechanism of `SPF_TEXT_VALUE` except
its `all`. Mechanisms compare case-insensitively, `+` is the default qualifier, and an `ip4:`/
`ip6:` network compares as a network (`ip4:192.0.2.1` is `ip4:192.0.2.1/32`). Includes are not
followed: `include:relay.example` must appear as such.
"""

from __future__ import annotations

import contextlib
from ipaddress import ip_network

VERSION = "v=spf1"


def spf_record(records: list[str]) -> str | None:
    """The one SPF record among a name's TXT records; None when there is none or more than one."""
    found = [r for r in records if r.strip().lower() == VERSION or r.strip().lower().startswith(VERSION + " ")]
    return found[0] if len(found) == 1 else None


def _term(term: str) -> str:
    term = term.lower()
    if term.startswith("+"):
        term = term[1:]
    qualifier = term[0] if term[:1] in ("-", "~", "?") else ""
    body = term[len(qualifier) :]
    name, sep, value = body.partition(":")
    if sep and name in ("ip4", "ip6"):
        with contextlib.suppress(ValueError):  # not a network: compared as written
            value = str(ip_network(value, strict=False))
    return f"{qualifier}{name}{sep}{value}"


def terms(record: str) -> set[str]:
    """The normalised terms of an SPF record, without `v=spf1`."""
    return {_term(t) for t in record.split()[1:]}


def is_all(term: str) -> bool:
    return term.lstrip("+-~?") == "all"


def covers(published: list[str], wanted: str) -> bool:
    """Whether the TXT records `published` hold one SPF record with every mechanism of `wanted` (but its `all`)."""
    record = spf_record(published)
    if record is None:
        return False
    needed = {t for t in terms(wanted) if not is_all(t)}
    return needed <= terms(record)
