"""The DNS look-ups of a request: through the resolver `DNS_RESOLVER` names."""

from __future__ import annotations

import socket
from typing import Annotated

from fastapi import Depends

from api_service.deps import AppSettings
from api_service.domains.dns import DnsLookup, lookup_for
from api_service.domains.health import HealthConfig
from api_service.domains.health_service import health_config


def get_dns(settings: AppSettings) -> DnsLookup:
    return lookup_for(settings.dns_resolver)


Dns = Annotated[DnsLookup, Depends(get_dns)]


def get_health_config(settings: AppSettings) -> HealthConfig:
    return health_config(settings, helo=settings.helo_name or socket.getfqdn())


Health = Annotated[HealthConfig, Depends(get_health_config)]
