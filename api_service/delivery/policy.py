"""The delivery policy: destinations, their limits, the learning bounds, source IP pools and the
warm-up schedule. Built-in defaults, overridden by `DELIVERY_POLICY_FILE` (TOML), which is read
again whenever its modification time changes (no restart).

Pure except for `PolicySource`, which reads the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from ipaddress import ip_address
from typing import Any

log = logging.getLogger("postgate.delivery")

KEY_MAX = 200


@dataclass(frozen=True, slots=True)
class Limits:
    """What one destination may take; a rate of None is unlimited."""

    connections: int = 3
    messages_per_connection: int = 100
    per_second: float | None = None
    per_minute: float | None = None
    per_hour: float | None = None


# The big mailbox providers, by the names their MX hosts end with. A recipient domain whose MX
# hosts all belong to one provider shares that provider's limits (and learned state) with every
# other domain it hosts: Gmail throttles a sending IP, not a recipient domain.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "google": ("google.com", "googlemail.com", "aspmx.l.google.com"),
    "outlook": ("outlook.com", "protection.outlook.com", "hotmail.com", "olc.protection.outlook.com"),
    "yahoo": ("yahoodns.net", "yahoo.com"),
    "icloud": ("icloud.com", "mail.icloud.com", "me.com"),
    "gmx-webde": ("gmx.net", "gmx.com", "web.de", "mail.com"),
    "yandex": ("yandex.net", "yandex.ru"),
    "mailru": ("mail.ru",),
    "zoho": ("zoho.com", "zoho.eu", "zohomail.com"),
    "proton": ("protonmail.ch", "proton.ch"),
    "fastmail": ("messagingengine.com",),
    "comcast": ("comcast.net",),
    "orange": ("orange.fr", "wanadoo.fr"),
    "mimecast": ("mimecast.com",),
    "proofpoint": ("pphosted.com", "ppe-hosted.com"),
    "barracuda": ("barracudanetworks.com",),
}

# Published guidance and what large senders report they are allowed from a warmed IP, kept on the
# cautious side: learning lowers them further when a provider answers 421/4.7.x.
PROVIDER_LIMITS: dict[str, Limits] = {
    "google": Limits(connections=10, messages_per_connection=100, per_second=20.0),
    "outlook": Limits(connections=5, messages_per_connection=50, per_second=10.0),
    "yahoo": Limits(connections=5, messages_per_connection=20, per_second=5.0),
    "icloud": Limits(connections=5, messages_per_connection=50, per_second=5.0),
    "gmx-webde": Limits(connections=3, messages_per_connection=50, per_second=5.0),
    "yandex": Limits(connections=3, messages_per_connection=50, per_second=5.0),
    "mailru": Limits(connections=3, messages_per_connection=50, per_second=5.0),
}
# Any other destination: 600 a minute. Only here: a provider's or the relay's limits name their own
# rates, and a dataclass default would have capped them at 10 a second as well.
DEFAULT_LIMITS = Limits(per_minute=600.0)
# A relay is a service that takes volume (SES starts at 14 messages/s and says so with a 454):
# many connections, long ones; learning finds its rate.
RELAY_LIMITS = Limits(connections=20, messages_per_connection=1000, per_second=None)

# Messages a day per provider for a new IP, day 1 to day 30; from day 31 the IP is warm (no cap).
DEFAULT_WARMUP: tuple[int, ...] = (
    50, 100, 200, 400, 700, 1_000, 1_500, 2_000, 3_000, 4_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000,
    75_000, 100_000, 125_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 750_000,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Learning:
    """How replies move a destination's live limits (see `delivery.shaping`)."""

    floor_connections: int = 1
    floor_rate_factor: float = 0.05
    increase_after: int = 50  # deliveries without a throttling reply before one more connection
    hold_seconds: float = 120.0  # no increase this soon after a throttling reply
    suspend_after: int = 5  # throttling replies in a row (no delivery between) that suspend
    suspend_seconds: float = 60.0  # the first suspension; doubles for each further one
    suspend_max_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class SourceIp:
    """A local address the worker binds its connections to, and the name it gives in EHLO (which
    should be the address's PTR). `warmup_since`: the day it started sending (warm-up applies)."""

    address: str
    helo: str = ""
    warmup_since: date | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    default: Limits = DEFAULT_LIMITS
    relay: Limits = RELAY_LIMITS
    providers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(PROVIDERS))
    provider_limits: Mapping[str, Limits] = field(default_factory=lambda: dict(PROVIDER_LIMITS))
    destinations: Mapping[str, Limits] = field(default_factory=dict)
    learning: Learning = Learning()
    pools: Mapping[str, tuple[SourceIp, ...]] = field(default_factory=dict)
    default_pool: str = ""
    stream_pools: Mapping[str, str] = field(default_factory=dict)
    server_pools: Mapping[int, str] = field(default_factory=dict)
    warmup: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: {"default": DEFAULT_WARMUP})
    idle_seconds: float = 5.0

    def limits(self, key: str) -> Limits:
        """The configured limits of a destination key (see `destination_key`)."""
        if key in self.destinations:
            return self.destinations[key]
        if key.startswith("relay:"):
            return self.relay
        return self.provider_limits.get(key, self.default)

    def provider_of(self, hosts: Iterable[str]) -> str | None:
        """The provider every one of these MX hosts belongs to, if any."""
        found: set[str] = set()
        for host in hosts:
            name = host.lower().rstrip(".")
            owner = next((p for p, suffixes in self.providers.items() if any(name == s or name.endswith("." + s) for s in suffixes)), None)
            if owner is None:
                return None
            found.add(owner)
        return found.pop() if len(found) == 1 else None

    def pool_for(self, *, server_id: int, stream: str) -> tuple[SourceIp, ...]:
        """The source IPs a message of this server and stream may leave from (empty: the system's choice)."""
        name = self.server_pools.get(server_id) or self.stream_pools.get(stream) or self.default_pool
        return self.pools.get(name, ())

    def allowance(self, *, ip: SourceIp, provider: str, today: date) -> int | None:
        """Messages `ip` may send to `provider` today under its warm-up (None: no cap)."""
        if ip.warmup_since is None:
            return None
        schedule = self.warmup.get(provider) or self.warmup.get("default") or ()
        day = max(0, (today - ip.warmup_since).days)
        return schedule[day] if day < len(schedule) else None


def destination_key(*, hosts: list[str], policy: Policy) -> str:
    """A recipient domain's destination: its provider, else its MX host set."""
    provider = policy.provider_of(hosts)
    if provider is not None:
        return provider
    key = "mx:" + ",".join(sorted({h.lower().rstrip(".") for h in hosts}))
    if len(key) > KEY_MAX:
        key = "mx:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return key


def relay_key(host: str, port: int) -> str:
    return f"relay:{host}:{port}"[:KEY_MAX]


# --- the policy file --------------------------------------------------------------------------------


class PolicyError(ValueError):
    """The policy file says something that cannot be used."""


LIMIT_FIELDS = {f.name for f in dataclasses.fields(Limits)}


def _limits(table: Mapping[str, Any], base: Limits, where: str) -> Limits:
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in LIMIT_FIELDS:
            continue
        if name in ("connections", "messages_per_connection"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PolicyError(f"{where}.{name} must be a whole number of at least 1")
        elif value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value <= 0):
            raise PolicyError(f"{where}.{name} must be a positive number")
        values[name] = float(value) if name.startswith("per_") else value
    return dataclasses.replace(base, **values)


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"[{name}] must be a table")
    return value


def _source_ip(entry: Any, where: str) -> SourceIp:
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, Mapping) or "address" not in entry:
        raise PolicyError(f"{where}: each IP is an address or {{ address = …, helo = … }}")
    try:
        address = str(ip_address(str(entry["address"])))
    except ValueError:
        raise PolicyError(f"{where}: {entry['address']!r} is not an IP address") from None
    since = entry.get("warmup_since")
    if since is not None and not isinstance(since, date):
        raise PolicyError(f"{where}: warmup_since must be a date (2026-12-01)")
    return SourceIp(address=address, helo=str(entry.get("helo", "")), warmup_since=since)


def parse_policy(text: str, *, source_ips: str = "") -> Policy:
    """The policy a TOML text describes, on top of the built-in defaults; `source_ips` is the
    SOURCE_IPS setting (`ip[=helo],…`), the default pool when the file names none."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}") from None
    default = _limits(_table(data, "default"), DEFAULT_LIMITS, "default")
    relay = _limits(_table(data, "relay"), RELAY_LIMITS, "relay")
    providers = dict(PROVIDERS)
    provider_limits = dict(PROVIDER_LIMITS)
    for name, table in _table(data, "providers").items():
        if not isinstance(table, Mapping):
            raise PolicyError(f"[providers.{name}] must be a table")
        if "mx" in table:
            suffixes = table["mx"]
            if not isinstance(suffixes, list) or not all(isinstance(s, str) for s in suffixes):
                raise PolicyError(f"providers.{name}.mx must be a list of host name suffixes")
            providers[name] = tuple(s.lower().strip(".") for s in suffixes)
        elif name not in providers:
            raise PolicyError(f'[providers.{name}] needs mx = ["…"] (the MX host names it owns)')
        provider_limits[name] = _limits(table, provider_limits.get(name, default), f"providers.{name}")
    destinations = {
        str(key): _limits(table, provider_limits.get(str(key), default), f"destinations.{key}")
        for key, table in _table(data, "destinations").items()
        if isinstance(table, Mapping)
    }
    learning_table = _table(data, "learning")
    learning = Learning(**{f.name: learning_table[f.name] for f in dataclasses.fields(Learning) if f.name in learning_table})
    pools: dict[str, tuple[SourceIp, ...]] = {}
    for name, table in _table(data, "pools").items():
        ips = table.get("ips", []) if isinstance(table, Mapping) else None
        if not isinstance(ips, list) or not ips:
            raise PolicyError(f"[pools.{name}] needs ips = [ … ]")
        pools[str(name)] = tuple(_source_ip(entry, f"pools.{name}") for entry in ips)
    if source_ips.strip() and "default" not in pools:
        pools["default"] = tuple(
            SourceIp(address=str(ip_address(a.strip())), helo=h.strip())
            for a, _, h in (p.partition("=") for p in source_ips.split(","))
            if a.strip()
        )
    routing = _table(data, "pool_for")
    default_pool = str(routing.get("default", "default" if "default" in pools else ""))
    stream_pools = {str(k): str(v) for k, v in _table(routing, "streams").items()}
    try:
        server_pools = {int(k): str(v) for k, v in _table(routing, "servers").items()}
    except ValueError:
        raise PolicyError("pool_for.servers: keys are server IDs") from None
    for name in [default_pool, *stream_pools.values(), *server_pools.values()]:
        if name and name not in pools:
            raise PolicyError(f"pool_for names the pool {name!r}, which [pools] does not define")
    warmup: dict[str, tuple[int, ...]] = {"default": DEFAULT_WARMUP}
    for name, schedule in _table(data, "warmup").items():
        if not isinstance(schedule, list) or not all(isinstance(n, int) and n > 0 for n in schedule):
            raise PolicyError(f"warmup.{name} must be a list of messages per day (whole numbers)")
        warmup[str(name)] = tuple(schedule)
    idle = data.get("idle_seconds", 5.0)
    if not isinstance(idle, int | float) or idle < 0:
        raise PolicyError("idle_seconds must be a number of seconds")
    return Policy(
        default=default,
        relay=relay,
        providers=providers,
        provider_limits=provider_limits,
        destinations=destinations,
        learning=learning,
        pools=pools,
        default_pool=default_pool,
        stream_pools=stream_pools,
        server_pools=server_pools,
        warmup=warmup,
        idle_seconds=float(idle),
    )


class PolicySource:
    """The policy in force: the file's, read again when its modification time changes. A file that
    cannot be read or parsed keeps the previous policy (and is logged), so a typo in an edit never
    stops delivery; at start, it is an error."""

    def __init__(self, path: str = "", *, source_ips: str = "", relay: Limits | None = None) -> None:
        self.path = path.strip()
        self.source_ips = source_ips
        self._relay = relay
        self._mtime: float | None = None
        self._policy = self._apply(parse_policy("", source_ips=source_ips))
        if self.path:
            self._policy = self._load()

    def _apply(self, policy: Policy) -> Policy:
        return policy if self._relay is None else dataclasses.replace(policy, relay=self._relay)

    def _load(self) -> Policy:
        self._mtime = os.stat(self.path).st_mtime
        with open(self.path, encoding="utf-8") as handle:
            text = handle.read()
        return self._apply(parse_policy(text, source_ips=self.source_ips))

    def current(self) -> Policy:
        if not self.path:
            return self._policy
        try:
            if os.stat(self.path).st_mtime != self._mtime:
                self._policy = self._load()
                log.info("delivery policy %s loaded", self.path)
        except (OSError, PolicyError) as exc:
            log.error("delivery policy %s not reloaded, the previous one stays: %s", self.path, exc)
        return self._policy
