"""Gmail's and Yahoo's bulk-sender rules (February 2024), checked at send time without slowing it:
a Broadcasts message from a domain without a DMARC record, or whose return path is not aligned
with its From, still goes out, with a warning in the response's `Message`.

Whether a domain publishes DMARC is a DNS question: its answer is remembered per process (an hour
when found, ten minutes when not), asked at most once at a time per domain, and a send waits for
it at most `WAIT_SECONDS` (then the look-up goes on in the background and a later send uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from api_service.domains.dns import DnsLookup

WAIT_SECONDS = 0.2
LOOKUP_SECONDS = 5.0
FOUND_TTL = 3600.0
MISSING_TTL = 600.0
MAX_ENTRIES = 10_000


def has_dmarc(records: list[str]) -> bool:
    """One of the TXT records of `_dmarc.<domain>` is a DMARC record (RFC 7489 §6.4: `v=DMARC1` first)."""
    return any(record.strip().lower().replace(" ", "").startswith("v=dmarc1") for record in records)


def policy_domains(domain: str) -> list[str]:
    """Where a receiver looks for the domain's DMARC policy: the domain, then (RFC 7489 §6.6.3) its
    organisational domain; without a public-suffix list, each parent down to two labels."""
    labels = domain.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


class DmarcRecords:
    """Per-process memory of which sending domains publish DMARC."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[float, bool]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def known(self, domain: str) -> bool | None:
        """Whether `domain` publishes DMARC, None when not (yet) known."""
        hit = self._known.get(domain.lower())
        return None if hit is None or hit[0] < time.monotonic() else hit[1]

    async def prefetch(self, domain: str, *, dns: DnsLookup, wait: float = WAIT_SECONDS) -> None:
        """Start looking `domain` up unless known or under way, and wait for the answer at most `wait` seconds."""
        domain = domain.lower()
        if not domain or self.known(domain) is not None:
            return
        task = self._pending.get(domain)
        if task is None:
            task = asyncio.create_task(self._look_up(domain, dns))
            self._pending[domain] = task
            task.add_done_callback(lambda _: self._pending.pop(domain, None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), wait)

    async def _look_up(self, domain: str, dns: DnsLookup) -> None:
        found = False
        try:
            async with asyncio.timeout(LOOKUP_SECONDS):
                for name in policy_domains(domain):
                    if has_dmarc(await dns.txt(f"_dmarc.{name}")):
                        found = True
                        break
        except TimeoutError:
            return  # no answer is no answer: asked again by a later send
        if len(self._known) >= MAX_ENTRIES:
            self._known.clear()
        self._known[domain] = (time.monotonic() + (FOUND_TTL if found else MISSING_TTL), found)

    def forget(self) -> None:
        self._known.clear()


DMARC = DmarcRecords()


def bulk_warnings(*, domain: str, aligned: bool, dmarc: bool | None) -> list[str]:
    """What a Broadcasts send from `domain` lacks of the bulk-sender rules (nothing when `dmarc` is not known yet)."""
    warnings = []
    if dmarc is False:
        warnings.append(
            f"{domain} publishes no DMARC record (_dmarc.{domain}); Gmail and Yahoo require one of bulk senders, "
            "e.g. v=DMARC1; p=none; rua=mailto:dmarc@" + domain
        )
    if not aligned:
        warnings.append(
            f"{domain} has no verified ReturnPathDomain, so the envelope sender is not on {domain} and SPF does not align "
            "for DMARC; add one (PUT /domains/{id}) and verify it"
        )
    return warnings
