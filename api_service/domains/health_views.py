"""The wire shape of sender health (`GET /domains/{id}/health`)."""

from __future__ import annotations

from api_service.domains import health
from api_service.domains.health_service import HealthView, IpView
from shared.schemas.sender_health import DomainHealth, HealthCheck, SourceIpHealth


def check_details(check: health.Check) -> HealthCheck:
    return HealthCheck(
        Name=check.name, Status=check.status, Why=check.why, Fix=check.fix, Host=check.host, Type=check.type, Record=check.record
    )


def ip_details(ip: IpView) -> SourceIpHealth:
    return SourceIpHealth(IP=ip.ip, Status=ip.status, CheckedAt=ip.checked_at, Checks=[check_details(c) for c in ip.checks])


def health_details(view: HealthView) -> DomainHealth:
    return DomainHealth(
        ID=view.domain.id,
        Name=view.domain.name,
        Status=view.status,
        CheckedAt=view.checked_at,
        Checks=[check_details(c) for c in view.checks],
        SourceIPs=[ip_details(ip) for ip in view.ips],
    )
