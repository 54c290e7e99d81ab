"""The wire shape of sender health (`GET /domains/{id}/health`)."""

from __future__ import annotations

from api_service.domains import health
from api_service.domains.health_service import HealthView
from shared.constants import HealthStatus
from shared.schemas.sender_health import DomainHealth, HealthCheck, SourceIpHealth


def health_details(view: HealthView) -> DomainHealth:
    return DomainHealth(
        ID=view.domain.id,
        Name=view.domain.name,
        Status=view.status,
        CheckedAt=view.checked_at,
        Checks=[HealthCheck.model_validate(c) for c in view.checks],
        SourceIPs=[
            SourceIpHealth(
                IP=ip.ip,
                Status=health.worst([HealthStatus(c["Status"]) for c in ip.checks]),
                CheckedAt=ip.checked_at,
                Checks=[HealthCheck.model_validate(c) for c in ip.checks],
            )
            for ip in view.ips
        ],
    )
