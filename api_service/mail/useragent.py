"""Who opened or clicked: the User-Agent read with ua-parser (the maintained uap-core rules)
into Postmark's Client, OS and Platform."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

from shared.constants import Platform

UNKNOWN = "Unknown"
MAX_FIELD = 200

# Image proxies of web mail services fetch the pixel for their users.
WEBMAIL_CLIENTS = {"GmailImageProxy": "Gmail", "YahooMailProxy": "Yahoo Mail"}
COMPANIES = {
    "Chrome": "Google",
    "Chrome Mobile": "Google",
    "Chrome Mobile iOS": "Google",
    "Chrome Mobile WebView": "Google",
    "Gmail": "Google",
    "Firefox": "Mozilla",
    "Firefox Mobile": "Mozilla",
    "Firefox iOS": "Mozilla",
    "Thunderbird": "Mozilla",
    "Safari": "Apple",
    "Mobile Safari": "Apple",
    "Mobile Safari UI/WKWebView": "Apple",
    "Apple Mail": "Apple",
    "Edge": "Microsoft",
    "Edge Mobile": "Microsoft",
    "IE": "Microsoft",
    "Outlook": "Microsoft",
    "Windows Live Mail": "Microsoft",
    "Opera": "Opera Software",
    "Samsung Internet": "Samsung",
    "Yahoo Mail": "Yahoo",
    "Windows": "Microsoft",
    "Mac OS X": "Apple",
    "iOS": "Apple",
    "Android": "Google",
    "Chrome OS": "Google",
    "Linux": "Linux",
    "Ubuntu": "Canonical",
}
MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})
DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "FreeBSD", "Debian"})


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Postmark's Client, OS and Platform of an open or a click."""

    user_agent: str = ""
    client_name: str = UNKNOWN
    client_company: str = UNKNOWN
    client_family: str = UNKNOWN
    os_name: str = UNKNOWN
    os_company: str = UNKNOWN
    os_family: str = UNKNOWN
    platform: Platform = Platform.UNKNOWN


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def _cut(value: str) -> str:
    return value.replace("\x00", "")[:MAX_FIELD]


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str) -> ClientInfo:
    """Unknown parts stay "Unknown"; a web mail image proxy makes the platform WebMail."""
    user_agent = user_agent.replace("\x00", "")[:1000]
    result = parse(user_agent)
    agent, system, device = result.user_agent, result.os, result.device
    client_family = WEBMAIL_CLIENTS.get(agent.family, agent.family) if agent else UNKNOWN
    client_name = _cut(f"{client_family} {_version(agent.major, agent.minor)}".strip()) if agent else UNKNOWN
    os_family = system.family if system else UNKNOWN
    os_name = _cut(f"{os_family} {_version(system.major, system.minor)}".strip()) if system else UNKNOWN
    if agent and agent.family in WEBMAIL_CLIENTS:
        os_family = os_name = UNKNOWN  # the proxy's, not the reader's
    if agent and agent.family in WEBMAIL_CLIENTS:
        platform = Platform.WEBMAIL
    elif os_family in MOBILE_OS or (device is not None and device.family in ("iPhone", "iPad", "Generic Smartphone", "Generic Tablet")):
        platform = Platform.MOBILE
    elif os_family in DESKTOP_OS:
        platform = Platform.DESKTOP
    else:
        platform = Platform.UNKNOWN
    return ClientInfo(
        user_agent=user_agent,
        client_name=client_name,
        client_company=COMPANIES.get(client_family, UNKNOWN),
        client_family=_cut(client_family),
        os_name=os_name,
        os_company=COMPANIES.get(os_family, UNKNOWN),
        os_family=_cut(os_family),
        platform=platform,
    )
