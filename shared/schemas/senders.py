"""Sender signatures and domains (account token)."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class SenderCreate(WireModel):
    """A new sender signature."""

    FromEmail: str | None = None
    Name: str | None = None
    ReplyToEmail: str | None = None
    ReturnPathDomain: str | None = None
    ConfirmationPersonalNote: str | None = Field(default=None, description="≤ 400 chars")

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [{"FromEmail": "sender@example.com", "Name": "Sender"}]}}


class SenderEdit(WireModel):
    """Fields of a sender signature that can change."""

    model_config = WireModel.model_config | {
        "json_schema_extra": {"examples": [{"Name": "Billing", "ReplyToEmail": "support@example.com"}]}
    }

    Name: str | None = None
    ReplyToEmail: str | None = None
    ReturnPathDomain: str | None = None
    ConfirmationPersonalNote: str | None = None


class DnsDetails(WireResponse):
    """DNS fields shared by signatures and domains."""

    SPFVerified: bool = False
    SPFHost: str = ""
    SPFTextValue: str = ""
    DKIMVerified: bool = False
    WeakDKIM: bool = False
    DKIMHost: str = ""
    DKIMTextValue: str = ""
    DKIMPendingHost: str = ""
    DKIMPendingTextValue: str = ""
    DKIMRevokedHost: str = ""
    DKIMRevokedTextValue: str = ""
    SafeToRemoveRevokedKeyFromDNS: bool = False
    DKIMUpdateStatus: str = "Regular"
    ReturnPathDomain: str = ""
    ReturnPathDomainVerified: bool = False
    ReturnPathDomainCNAMEValue: str = ""


class SenderSummary(WireResponse):
    ID: int
    Domain: str
    EmailAddress: str
    ReplyToEmailAddress: str
    Name: str
    Confirmed: bool


class SenderDetails(DnsDetails):
    ID: int
    Domain: str
    EmailAddress: str
    ReplyToEmailAddress: str
    Name: str
    Confirmed: bool
    ConfirmationPersonalNote: str = ""


class SenderList(WireResponse):
    TotalCount: int
    SenderSignatures: list[SenderSummary]


class DomainCreate(WireModel):
    """A new sending domain: every address on it may send."""

    Name: str | None = None
    ReturnPathDomain: str | None = None
    TrackingDomain: str | None = Field(
        default=None,
        description="Beyond Postmark: a subdomain serving this domain's open and click URLs (a CNAME of TrackingDomainCNAMEValue)",
    )
    DKIMEd25519: bool | None = Field(default=None, description="Beyond Postmark: also sign with an Ed25519 key (RFC 8463)")

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [{"Name": "example.com"}]}}


class DomainEdit(WireModel):
    """A domain's return-path domain and tracking domain (subdomains of it; "" removes one)."""

    model_config = WireModel.model_config | {"json_schema_extra": {"examples": [{"ReturnPathDomain": "pm-bounces.example.com"}]}}

    ReturnPathDomain: str | None = None
    TrackingDomain: str | None = Field(default=None, description="Beyond Postmark: see DomainCreate")
    DKIMEd25519: bool | None = Field(default=None, description="Beyond Postmark: true adds an Ed25519 key, false revokes it")


class DomainSummary(WireResponse):
    ID: int
    Name: str
    SPFVerified: bool
    DKIMVerified: bool
    WeakDKIM: bool
    ReturnPathDomainVerified: bool


class DomainDetails(DnsDetails):
    ID: int
    Name: str
    TrackingDomain: str = Field(default="", description="Beyond Postmark: the host of this domain's open and click URLs once verified")
    TrackingDomainVerified: bool = Field(
        default=False, description="Beyond Postmark: TrackingDomain is a CNAME of TrackingDomainCNAMEValue"
    )
    TrackingDomainCNAMEValue: str = Field(default="", description="Beyond Postmark: the tracking host (of TRACKING_BASE_URL)")
    DKIMEd25519: bool = Field(default=False, description="Beyond Postmark: the domain has an Ed25519 key (RFC 8463)")
    DKIMEd25519Verified: bool = Field(default=False, description="Beyond Postmark: its record was seen in DNS; it signs beside the RSA key")
    DKIMEd25519Host: str = ""
    DKIMEd25519TextValue: str = ""
    DKIMEd25519PendingHost: str = ""
    DKIMEd25519PendingTextValue: str = ""
    DKIMEd25519RevokedHost: str = ""
    DKIMEd25519RevokedTextValue: str = ""
    SafeToRemoveRevokedEd25519KeyFromDNS: bool = False


class DomainList(WireResponse):
    TotalCount: int
    Domains: list[DomainSummary]
