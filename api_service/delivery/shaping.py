"""Traffic shaping, as pure functions: how much a destination may take now (admission), and what
its replies teach (additive increase, multiplicative decrease, suspension, retry hints).

The state lives in `delivery_destinations` (one row per destination, locked while a worker admits
work for it); these functions take that state and return the next one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from api_service.core.gcra import MICROSECONDS, Rate, take
from api_service.delivery.policy import Learning, Limits
from api_service.delivery.transport import Reply


class Throttle(StrEnum):
    """What a throttling reply complains about."""

    CONNECTIONS = "connections"
    RATE = "rate"


# Replies that mean "you send too much", not "this message or recipient has a problem": Gmail's
# 421 4.7.28 and 4.7.0 "unusual rate", Outlook's 4.7.500/4.7.650 "server busy", Yahoo's 421 4.7.0
# [TSS04], SES's 454 Throttling failure, Postfix's and Exim's "too many connections".
_CONNECTIONS = re.compile(r"too many (?:[\w-]+ ){0,3}(?:connections|sessions)|connection (?:limit|rate)", re.I)
_RATE = re.compile(
    r"\b4\.7\.(?:28|500|650)\b|\[TS[S0-9]\d+\]|throttl|rate (?:limit|exceeded)|sending rate|too many (?:messages|mails|emails|"
    r"recipients|deliveries)|unusual rate|try again later.*(?:rate|volume)|limit exceeded|quota exceeded|exceeded .*limit",
    re.I,
)
THROTTLE_CODES = frozenset({421, 450, 451, 452, 454})
_HINT = re.compile(
    r"(?:try|retry|come back)(?: again)?(?: (?:in|after))? (\d{1,5}) ?(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b", re.I
)


def throttle_of(code: int, text: str, *, greeting: bool = False) -> Throttle | None:
    """Whether a reply is a destination pushing back, and against what; a 421 greeting always is
    (the server refused the connection itself)."""
    if code not in THROTTLE_CODES:
        return None
    if _CONNECTIONS.search(text) or (greeting and code == 421):
        return Throttle.CONNECTIONS
    if _RATE.search(text):
        return Throttle.RATE
    return None


def retry_hint(text: str) -> float | None:
    """Seconds a reply asks us to wait ("try again in 5 minutes"), at most a day."""
    found = _HINT.search(text)
    if found is None:
        return None
    unit = found.group(2).lower()[0]
    return min(86_400.0, float(found.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit])


@dataclass(frozen=True, slots=True)
class Learned:
    """A destination's live state."""

    connections: int
    rate_factor: float = 1.0
    successes: int = 0
    throttles: int = 0
    throttled_at: datetime | None = None
    suspended_until: datetime | None = None


def clamp(state: Learned, limits: Limits, learning: Learning) -> Learned:
    """Within the configured cap (the policy may have changed) and above the floor."""
    connections = max(min(learning.floor_connections, limits.connections), min(state.connections, limits.connections))
    return dataclasses.replace(state, connections=connections, rate_factor=max(learning.floor_rate_factor, min(1.0, state.rate_factor)))


def after_batch(
    state: Learned, *, delivered: int, throttled: set[Throttle], hint: float | None, limits: Limits, learning: Learning, now: datetime
) -> Learned:
    """The state after a batch of sends to the destination: deliveries raise the limits slowly
    (additive increase, not sooner than `hold_seconds` after a throttling reply), a throttling reply
    halves what it complains about (multiplicative decrease, once per batch), and throttling replies
    in a row with no delivery between suspend the destination, for longer each time (or for as long
    as a reply asked)."""
    state = clamp(state, limits, learning)
    if delivered:
        successes = state.successes + delivered
        connections, factor = state.connections, state.rate_factor
        held = state.throttled_at is not None and now - state.throttled_at < timedelta(seconds=learning.hold_seconds)
        if successes >= learning.increase_after and not held:
            connections, factor, successes = min(limits.connections, connections + 1), min(1.0, factor + 0.1), 0
        state = dataclasses.replace(state, connections=connections, rate_factor=factor, successes=successes, throttles=0)
    if not throttled:
        return state
    connections, factor = state.connections, state.rate_factor
    if Throttle.CONNECTIONS in throttled:
        connections = max(learning.floor_connections, min(connections - 1, math.ceil(connections / 2)))
    if Throttle.RATE in throttled:
        factor = max(learning.floor_rate_factor, factor / 2)
    throttles = state.throttles + (0 if delivered else 1)
    suspended = state.suspended_until
    if hint is not None:
        suspended = now + timedelta(seconds=hint)
    elif throttles >= learning.suspend_after:
        seconds = min(learning.suspend_max_seconds, learning.suspend_seconds * 2 ** (throttles - learning.suspend_after))
        suspended = now + timedelta(seconds=seconds)
    return Learned(
        connections=connections, rate_factor=factor, successes=0, throttles=throttles, throttled_at=now, suspended_until=suspended
    )


# --- admission -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Buckets:
    """The GCRA state of a destination's three rates (None: never used)."""

    second: int | None = None
    minute: int | None = None
    hour: int | None = None


def rates(limits: Limits, factor: float) -> tuple[Rate | None, Rate | None, Rate | None]:
    """The per-second, per-minute and per-hour buckets, each holding one period's worth."""

    def rate(per: float | None, seconds: int) -> Rate | None:
        if per is None:
            return None
        allowed = max(per * factor, 1e-6)
        return Rate(per_second=allowed / seconds, burst=max(1, math.floor(allowed)))

    return rate(limits.per_second, 1), rate(limits.per_minute, 60), rate(limits.per_hour, 3600)


@dataclass(frozen=True, slots=True)
class Admission:
    """How many recipients may go now, the buckets after taking them, and (when the rates allow
    none) how long until one more may."""

    granted: int
    buckets: Buckets
    wait_us: int = 0


def admit(*, want: int, limits: Limits, factor: float, buckets: Buckets, now_us: int) -> Admission:
    """Take up to `want` tokens from every rate bucket at once (as many as the emptiest allows)."""
    if want <= 0:
        return Admission(granted=0, buckets=buckets)
    bucket_rates = rates(limits, factor)
    tats = (buckets.second, buckets.minute, buckets.hour)
    granted = want
    for rate, tat in zip(bucket_rates, tats, strict=True):
        if rate is not None:
            granted = min(granted, take(tat=tat, now=now_us, want=want, rate=rate).granted)
    if granted == 0:
        waits = [take(tat=tat, now=now_us, want=0, rate=rate).wait(rate) for rate, tat in zip(bucket_rates, tats, strict=True) if rate]
        return Admission(granted=0, buckets=buckets, wait_us=max(waits, default=MICROSECONDS))
    new = [
        take(tat=tat, now=now_us, want=granted, rate=rate).tat if rate is not None else tat
        for rate, tat in zip(bucket_rates, tats, strict=True)
    ]
    return Admission(granted=granted, buckets=Buckets(second=new[0], minute=new[1], hour=new[2]))


# A reply about the sending IP itself: on a blocklist, or of poor reputation. Another IP of the pool may do.
_LISTED = re.compile(
    r"\b(?:block|black|deny)\s?list|\blisted\b|spamhaus|spamcop|barracuda|\b(?:RBL|DNSBL)\b|poor reputation|"
    r"(?:client|sending|your) (?:host|IP)(?: address)? .{0,40}(?:blocked|banned|rejected)",
    re.I,
)


def ip_refused(greeting: Reply | None, replies: list[Reply]) -> bool:
    """The destination refused the source IP: a 5xx greeting, or a reply naming a blocklist."""
    if greeting is not None and greeting.code >= 500:
        return True
    return any(r.code >= 400 and _LISTED.search(r.message) for r in ([greeting] if greeting else []) + replies)
