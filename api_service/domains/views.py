"""The DNS fields domains and sender signatures show (`DKIMHost`, `DKIMPendingHost`, `SPFTextValue` …)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from api_service.config import Settings
from api_service.domains.service import (
    dkim_ed25519_value,
    dkim_host,
    dkim_value,
    safe_to_remove_revoked_ed25519_key,
    safe_to_remove_revoked_key,
    update_status,
)
from api_service.models import Domain
from shared.schemas.senders import DnsDetails


def dns_details(domain: Domain | None, *, settings: Settings, now: datetime) -> DnsDetails:
    """The records to publish for a domain and what was verified; all empty without a domain."""
    if domain is None:
        return DnsDetails(SPFTextValue=settings.spf_text_value, ReturnPathDomainCNAMEValue=settings.return_path_domain)
    return DnsDetails(
        SPFVerified=domain.spf_verified,
        SPFHost=domain.name,
        SPFTextValue=settings.spf_text_value,
        DKIMVerified=domain.dkim_verified,
        WeakDKIM=False,
        DKIMHost=dkim_host(domain.dkim_selector, domain.name),
        DKIMTextValue=dkim_value(domain.dkim_public_key),
        DKIMPendingHost=dkim_host(domain.dkim_pending_selector, domain.name),
        DKIMPendingTextValue=dkim_value(domain.dkim_pending_public_key),
        DKIMRevokedHost=dkim_host(domain.dkim_revoked_selector, domain.name),
        DKIMRevokedTextValue=dkim_value(domain.dkim_revoked_public_key),
        SafeToRemoveRevokedKeyFromDNS=safe_to_remove_revoked_key(domain, now=now),
        DKIMUpdateStatus=update_status(domain).value,
        ReturnPathDomain=domain.return_path_domain,
        ReturnPathDomainVerified=domain.return_path_verified,
        ReturnPathDomainCNAMEValue=settings.return_path_domain,
    )


def tracking_cname_value(settings: Settings) -> str:
    """The host a TrackingDomain is a CNAME of: that of TRACKING_BASE_URL."""
    return (urlsplit(settings.tracking_url).hostname or "").lower()


def ed25519_details(domain: Domain, *, now: datetime) -> dict[str, str | bool]:
    """The `DKIMEd25519*` fields of a domain's details (beyond Postmark)."""
    return {
        "DKIMEd25519": bool(domain.dkim_ed25519_selector),
        "DKIMEd25519Verified": domain.dkim_ed25519_verified,
        "DKIMEd25519Host": dkim_host(domain.dkim_ed25519_selector, domain.name),
        "DKIMEd25519TextValue": dkim_ed25519_value(domain.dkim_ed25519_public_key),
        "DKIMEd25519PendingHost": dkim_host(domain.dkim_ed25519_pending_selector, domain.name),
        "DKIMEd25519PendingTextValue": dkim_ed25519_value(domain.dkim_ed25519_pending_public_key),
        "DKIMEd25519RevokedHost": dkim_host(domain.dkim_ed25519_revoked_selector, domain.name),
        "DKIMEd25519RevokedTextValue": dkim_ed25519_value(domain.dkim_ed25519_revoked_public_key),
        "SafeToRemoveRevokedEd25519KeyFromDNS": safe_to_remove_revoked_ed25519_key(domain, now=now),
    }
