"""Is an open or a click a person's, or a machine's? Pure, no I/O: the rules and their sources are data
(`machines.toml`, read once); the facts a rule needs beyond the request (seconds since delivery, links clicked
just before) are looked up by the service and passed in.

Beyond Postmark: the opens and clicks API, the webhooks and the console add `Machine` and `MachineReason`;
Postmark's own fields are unchanged.
"""

from __future__ import annotations

import functools
import ipaddress
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).with_name("machines.toml")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEAD_REQUEST = "HeadRequest"
CLICK_ON_DELIVERY = "ClickOnDelivery"
MANY_LINKS_AT_ONCE = "ManyLinksAtOnce"


class Hit(StrEnum):
    OPEN = "open"
    CLICK = "click"


@dataclass(frozen=True, slots=True)
class Verdict:
    machine: bool
    reason: str = ""


PERSON = Verdict(machine=False)


@dataclass(frozen=True, slots=True)
class Behaviour:
    click_after_delivery_seconds: float
    burst_links: int
    burst_window_seconds: float
    head_is_machine: bool


@dataclass(frozen=True, slots=True)
class Rules:
    behaviour: Behaviour
    networks: list[tuple[Network, str]]
    exact_agents: dict[str, str]
    """Lower-cased whole User-Agent → reason."""
    agent_parts: list[tuple[str, str]]
    """Lower-cased substring → reason."""


def parse_rules(data: dict[str, Any]) -> Rules:
    """The rules of a `machines.toml` document; a rule with `machine = false` is kept out (counted as people)."""
    b = data["behaviour"]
    behaviour = Behaviour(
        click_after_delivery_seconds=float(b["click_after_delivery_seconds"]),
        burst_links=int(b["burst_links"]),
        burst_window_seconds=float(b["burst_window_seconds"]),
        head_is_machine=bool(b["head_is_machine"]),
    )
    networks: list[tuple[Network, str]] = []
    for rule in data.get("network", []):
        if rule.get("machine", True):
            networks.extend((ipaddress.ip_network(cidr, strict=True), str(rule["reason"])) for cidr in rule["cidrs"])
    exact: dict[str, str] = {}
    parts: list[tuple[str, str]] = []
    for rule in data.get("agent", []):
        if rule.get("machine", True):
            exact |= {agent.lower(): str(rule["reason"]) for agent in rule.get("exact", [])}
            parts.extend((part.lower(), str(rule["reason"])) for part in rule.get("contains", []))
    # Longest prefixes first, so a narrower range's reason wins over a wider one's.
    networks.sort(key=lambda n: n[0].prefixlen, reverse=True)
    return Rules(behaviour=behaviour, networks=networks, exact_agents=exact, agent_parts=parts)


@functools.cache
def rules() -> Rules:
    with RULES_FILE.open("rb") as handle:
        return parse_rules(tomllib.load(handle))


def network_reason(ip: str, table: Rules) -> str:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return next((reason for network, reason in table.networks if address.version == network.version and address in network), "")


def agent_reason(user_agent: str, table: Rules) -> str:
    agent = user_agent.strip().lower()
    if agent in table.exact_agents:
        return table.exact_agents[agent]
    return next((reason for part, reason in table.agent_parts if part in agent), "")


def classify(
    *,
    hit: Hit,
    method: str,
    user_agent: str,
    ip: str,
    seconds_since_delivery: float | None = None,
    other_links_just_before: int = 0,
    table: Rules | None = None,
) -> Verdict:
    """The first rule that says machine, in this order: a HEAD request, a known network, a known User-Agent, then
    (clicks only) a click on arrival, or one of many links clicked within the burst window. Otherwise a person."""
    table = table or rules()
    b = table.behaviour
    if b.head_is_machine and method.upper() == "HEAD":
        return Verdict(True, HEAD_REQUEST)
    reason = network_reason(ip, table) or agent_reason(user_agent, table)
    if reason:
        return Verdict(True, reason)
    if hit is Hit.CLICK:
        if seconds_since_delivery is not None and seconds_since_delivery <= b.click_after_delivery_seconds:
            return Verdict(True, CLICK_ON_DELIVERY)
        if other_links_just_before + 1 >= b.burst_links:
            return Verdict(True, MANY_LINKS_AT_ONCE)
    return PERSON
