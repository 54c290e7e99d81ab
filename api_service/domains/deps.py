"""The DNS look-ups of a request: through the resolver `DNS_RESOLVER` names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api_service.deps import AppSettings
from api_service.domains.dns import DnsLookup, lookup_for


def get_dns(settings: AppSettings) -> DnsLookup:
    return lookup_for(settings.dns_resolver)


Dns = Annotated[DnsLookup, Depends(get_dns)]
