"""Settings, from environment variables."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from ipaddress import ip_address
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_service.core.netguard import UrlGuard, dns_resolver, parse_networks

INTERNAL_TOKEN_MIN_CHARS = 20


def check_internal_token(value: str) -> str:
    """Empty (the account token stands in) or a secret long enough not to be guessed."""
    value = value.strip()
    if value and len(value) < INTERNAL_TOKEN_MIN_CHARS:
        raise ValueError(f"INTERNAL_TOKEN must be empty or at least {INTERNAL_TOKEN_MIN_CHARS} characters, e.g. $(openssl rand -hex 20)")
    return value


class Settings(BaseSettings):
    """api_service and delivery worker settings."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgate")
    account_token: str = Field(default="", description="Account API token; empty refuses every account request")
    internal_token: str = Field(
        default="",
        description="Shared with the SMTP gateway: the bearer token /internal/smtp/* requires; ACCOUNT_TOKEN stands in when empty",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default=1, ge=1, description="uvicorn worker processes; one per core for throughput")
    api_access_log: bool = Field(default=True, description="One log line per request: method, route template, status, duration, server id")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_public_host: str = Field(default="", description="Host name shown in SMTP connection instructions")
    outbound_relay: str = Field(default="mx", description="smtp://[user:pass@]host:port[?starttls=true], or mx for direct delivery")
    return_path_domain: str = Field(
        default="bounces.localhost", description="Domain of the VERP envelope senders; point its MX at the inbound listener"
    )
    inbound_domain: str = Field(
        default="inbound.localhost",
        description="Domain of the servers' inbound addresses (<InboundHash>@…); point its MX at the inbound listener",
    )
    inbound_hook_retry_schedule: str = Field(
        default="60,300,600,600,600,900,1800,3600,7200,21600",
        description="Seconds between InboundHookUrl attempts (Postmark's inbound schedule)",
    )
    helo_name: str = Field(default="", description="Name given in EHLO when delivering; the machine's name when empty")
    delivery_retry_first_seconds: float = Field(default=900, description="First retry after a temporary failure; doubles each time")
    delivery_retry_horizon_seconds: float = Field(default=72 * 3600, description="Give up (SoftBounce) after this long")
    delivery_lease_seconds: float = Field(default=300, description="A claimed row returns to the queue if its worker is silent this long")
    delivery_concurrency: int = Field(default=20, description="Messages a worker delivers at once")
    delivery_batch_size: int = 100
    delivery_policy_file: str = Field(
        default="",
        description="TOML file of destination limits, source IP pools, warm-up and [tls] overrides (README: Direct delivery); read again when it changes",
    )
    source_ips: str = Field(
        default="",
        description="Comma-separated ip[=helo] the worker binds outgoing connections to (the default pool); sender health checks their PTR, HELO and blocklists",
    )
    delivery_timeout_seconds: float = 60
    delivery_deadline_seconds: float = Field(
        default=240, description="Longest one delivery may take over all MX hosts and addresses; keep it below the lease"
    )
    mx_allowed_networks: str = Field(
        default="", description="Comma-separated CIDRs an MX may resolve to although not public (loopback, LAN); empty: public only"
    )
    webhook_allowed_networks: str = Field(
        default="", description="Comma-separated CIDRs a webhook URL may resolve to although not public; empty: public only"
    )
    feedback_loop_senders: str = Field(
        default="",
        description="Comma-separated addresses or domains whose ARF complaints count for recipients of any domain (an ISP's feedback loop)",
    )
    # The return path is signed per installation (bounces/verp.py), so a bounce report cannot be
    # addressed from a Message-ID alone; the previous keys keep the mail in flight when it rotates.
    verp_secret: str = Field(
        default="",
        description="Key of the HMAC in VERP return paths (pgb+<id>-<mac>@); ACCOUNT_TOKEN when empty",
    )
    verp_secret_previous: str = Field(
        default="",
        description="Comma-separated earlier VERP_SECRETs (or ACCOUNT_TOKENs), still accepted but no longer used to sign",
    )
    verp_legacy_before: datetime | None = Field(
        default=None,
        description="Unsigned return paths (pgb+<message id>@, before v2) count for messages accepted before this time; unset: never",
    )
    dns_resolver: str = Field(
        default="",
        description="host[:port] of the DNS server for MX and address lookups; empty: the system's. DANE needs it to validate DNSSEC",
    )
    # TLS of direct delivery (README: Delivery, TLS for direct delivery).
    delivery_mta_sts: bool = Field(default=True, description="Honour recipient domains' MTA-STS policies (RFC 8461)")
    delivery_dane: bool = Field(
        default=True, description="Honour DNSSEC-authenticated TLSA records of MX hosts (DANE, RFC 7672); needs a validating DNS_RESOLVER"
    )
    delivery_tls_ca_file: str = Field(
        default="", description="PEM bundle of the CAs that MX and MTA-STS policy certificates must chain to; empty: the system's"
    )
    delivery_tls_require: str = Field(
        default="", description="Comma-separated destination domains whose MX must offer TLS (any certificate)"
    )
    delivery_tls_verify: str = Field(
        default="", description="Comma-separated destination domains whose MX must offer TLS with a certificate valid for the MX name"
    )
    tls_rpt_organization: str = Field(
        default="", description="organization-name of the TLS-RPT reports sent; HELO_NAME (or the machine's name) when empty"
    )
    tls_rpt_interval_seconds: float = Field(
        default=60, gt=0, description="The worker stores TLS session counts and looks for TLS-RPT reports due this often"
    )
    worker_poll_seconds: float = 0.5
    bulk_batch_size: int = Field(default=500, ge=1, description="Bulk API entries the worker turns into messages per transaction")
    webhook_retry_schedule: str = Field(
        default="60,300,600,600,600,900,1800,3600,7200,21600", description="Seconds between webhook attempts"
    )
    webhook_timeout_seconds: float = Field(
        default=10, description="Longest one webhook request may take, redirects and a slow body included"
    )
    webhook_concurrency: int = Field(default=50, description="Webhook requests a worker has in flight at once")
    message_id_domain: str = Field(default="", description="Right-hand side of generated Message-IDs; the From domain when empty")
    # The pool is the API process' bound on database work: requests beyond it wait for a connection
    # instead of opening (and closing) one each, which made throughput fall as clients were added.
    db_pool_size: int = Field(default=10, ge=1, description="Database connections each API process keeps open")
    db_max_overflow: int = Field(default=0, ge=0, description="Extra short-lived connections beyond the pool under load")
    db_pool_timeout_seconds: float = Field(default=30, gt=0, description="Longest a request waits for a free connection")
    email_group_writers: int = Field(
        default=2, ge=0, description="Transactions in flight for grouped single sends per API process; 0 sends each alone"
    )
    email_group_max_messages: int = Field(default=500, ge=1, description="Most single sends that share one transaction")
    email_group_window_ms: float = Field(
        default=0, ge=0, description="Wait this long for more single sends before a group is written; 0: only what is queued"
    )
    public_url: str = Field(default="", description="Base URL used for ServerLink")
    # Shown on the console's SMTP connection card; the gateway itself reads the same variables.
    smtp_extra_ports: str = Field(default="", description="More SMTP ports, comma-separated, as the gateway's SMTP_EXTRA_PORTS")
    smtp_tls_cert: str = Field(default="", description="Set when the gateway offers STARTTLS")
    smtp_tls_port: int = Field(default=0, description="The gateway's implicit-TLS port (0: none)")
    console_session_hours: float = Field(default=12, description="A console sign-in lasts this long")
    console_failures_before_delay: int = Field(
        default=5,
        ge=1,
        description="Failed console sign-ins of one user name from one client IP before each next try waits (1 s, doubling)",
    )
    console_failures_per_ip: int = Field(default=50, description="Failed console sign-ins per client IP in the window before refusing")
    console_failure_window_seconds: float = Field(
        default=900, gt=0, description="Failures older than this are forgotten; the longest a user name and IP pair waits"
    )
    console_invitation_hours: float = Field(default=72, gt=0, description="A console invitation link works this long")
    console_break_glass_user: str = Field(
        default="admin", description="With SSO_ONLY, the one user who may still sign in with a password (an Owner, or `admin`)"
    )
    # Console single sign-on (OpenID Connect); off while OIDC_ISSUER is empty.
    oidc_issuer: str = Field(default="", description="OpenID Connect issuer URL; its /.well-known/openid-configuration is read")
    oidc_client_id: str = Field(default="", description="The console's client ID at the provider")
    oidc_client_secret: str = Field(default="", description="The console's client secret at the provider")
    oidc_scopes: str = Field(default="openid email profile", description="Scopes asked at sign-on")
    oidc_role_claim: str = Field(default="groups", description="The ID token claim OIDC_ROLE_MAP reads when an entry names no claim")
    oidc_role_map: str = Field(
        default="",
        description="Claim values to roles: `groups:pg-owners=Owner,pg-admins=Admin,support=Viewer:3`; no match: sign-on refused",
    )
    oidc_button_label: str = Field(default="Sign in with single sign-on", description="The SSO button's text on the sign-in page")
    sso_only: bool = Field(default=False, description="Console passwords off, except for CONSOLE_BREAK_GLASS_USER")
    # Sender signatures, domains and Postgate's own mail (see README, "How Postgate differs").
    sender_auto_confirm: bool = Field(
        default=False,
        description="Signatures are confirmed and domains may send at creation, without a confirmation mail or a DNS check (make run: true)",
    )
    sender_confirmation_hours: float = Field(default=48, gt=0, description="A signature's confirmation link works this long")
    system_from: str = Field(
        default="",
        description="From of Postgate's own mail (confirmation links, data-removal notices); postgate@RETURN_PATH_DOMAIN when empty",
    )
    system_server: str = Field(
        default="Postgate system",
        description="Name of the server whose outbound stream carries Postgate's own mail; made when first needed",
    )
    spf_text_value: str = Field(
        default="v=spf1 a mx ~all",
        description="The SPF record domains are asked to publish (SPFTextValue); verifyspf looks for its mechanisms",
    )
    bulk_sender_checks: bool = Field(
        default=True,
        description="Warn in the response Message of a Broadcasts send whose From domain has no DMARC record (looked up through DNS_RESOLVER, cached) or no aligned return path",
    )
    complaint_pause_rate: float = Field(
        default=0.003,
        ge=0,
        le=1,
        description="A stream whose spam complaints over the last 7 days pass this share of its recipients is paused (Google's 0.3 % line)",
    )
    complaint_pause_min_sent: int = Field(
        default=1000, ge=1, description="Recipients a stream must have had in those 7 days before its complaint rate can pause it"
    )
    dns_check_interval_seconds: float = Field(
        default=600, description="The worker re-checks an unverified or rotating DKIM key in DNS this often per domain"
    )
    # Sender health and the DMARC / TLS reports received (README: Sender health, DMARC and TLS reports).
    dnsbl_zones: str = Field(
        default="zen.spamhaus.org,b.barracudacentral.org,bl.spamcop.net",
        description="Comma-separated DNS blocklists each source IP is looked up in",
    )
    sender_health_interval_seconds: float = Field(
        default=3600, gt=0, description="The worker re-checks each domain's and IP's sender health this often"
    )
    dmarc_report_address: str = Field(
        default="", description="Where DMARC aggregate and failure reports are received; dmarc@INBOUND_DOMAIN when empty"
    )
    tls_report_address: str = Field(
        default="", description="Where SMTP TLS reports (RFC 8460) are received; tls-rpt@INBOUND_DOMAIN when empty"
    )
    data_removal_batch_size: int = Field(default=200, ge=1, description="Rows a data removal deletes or scrubs per table per step")
    # Operations: rate limits, metrics and logs (README: Operating Postgate).
    rate_limit_enabled: bool = Field(default=True, description="Per-token request limits; false turns them off")
    rate_limit_server_per_second: float = Field(default=100, gt=0, description="Requests a second one server token may make, sustained")
    rate_limit_server_burst: int = Field(default=1000, ge=1, description="Requests one server token may make at once, above the rate")
    rate_limit_account_per_second: float = Field(default=20, gt=0, description="Requests a second the account token may make, sustained")
    rate_limit_account_burst: int = Field(default=300, ge=1, description="Requests the account token may make at once")
    rate_limit_internal_per_second: float = Field(
        default=5000, gt=0, description="Requests a second on /internal/* (SMTP gateway, MX listener) per credential, sustained"
    )
    rate_limit_internal_burst: int = Field(default=50_000, ge=1, description="Requests on /internal/* per credential at once")
    rate_limit_lease_seconds: float = Field(
        default=0.5, ge=0, description="How long an API process may keep tokens it took ahead; 0: one shared round trip per request"
    )
    redis_url: str = Field(default="", description="redis://host:port/db: keep rate limits in Redis instead of PostgreSQL")
    metrics_token: str = Field(default="", description="When set, /metrics requires Authorization: Bearer <token>")
    metrics_host: str = Field(default="127.0.0.1", description="Address of the worker's metrics listener")
    worker_metrics_port: int = Field(default=0, ge=0, description="Port of the worker's /metrics (0: off)")
    # Retention (README: Operating Postgate, Retention) and upgrades.
    retention_days: int = Field(
        default=45, ge=1, le=3650, description="Days messages, bounces and webhook history are kept, for servers without RetentionDays"
    )
    audit_retention_days: int = Field(
        default=365, ge=1, le=36500, description="Days audit-log events are kept (the audit log's own retention)"
    )
    retention_batch_size: int = Field(default=1000, ge=1, le=5000, description="Rows the purge deletes per table per transaction")
    retention_interval_seconds: float = Field(
        default=300, gt=0, description="The worker looks for expired rows this often once none are left"
    )
    migration_lock_timeout_seconds: float = Field(
        default=10, gt=0, description="A migration gives up (and may be re-run) rather than wait longer than this for a table lock"
    )
    log_format: Literal["text", "json"] = Field(default="text", description="text (readable) or json (one object a line)")
    log_level: str = Field(default="INFO", description="Python logging level")

    @field_validator("mx_allowed_networks", "webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("internal_token")
    @classmethod
    def _internal_token(cls, value: str) -> str:
        return check_internal_token(value)

    @property
    def internal_credential(self) -> str:
        """What the gateway must present on /internal/smtp/*: INTERNAL_TOKEN, else ACCOUNT_TOKEN ("" refuses all)."""
        return self.internal_token.strip() or self.account_token.strip()

    @field_validator("inbound_hook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if any(float(v) < 0 for v in value.split(",") if v.strip()):
            raise ValueError("retry delays are seconds, not negative")
        return value

    @field_validator("verp_legacy_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @field_validator("source_ips")
    @classmethod
    def _source_ips(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                ip_address(item.partition("=")[0].strip())  # a ValueError names the bad one
        return value

    @property
    def source_ip_list(self) -> list[str]:
        """The addresses of SOURCE_IPS (each `ip` or `ip=helo`)."""
        return [str(ip_address(item.partition("=")[0].strip())) for item in self.source_ips.split(",") if item.strip()]

    @property
    def dnsbl_zone_list(self) -> list[str]:
        return [zone.strip().lower().strip(".") for zone in self.dnsbl_zones.split(",") if zone.strip()]

    @property
    def dmarc_report_mailbox(self) -> str:
        return (self.dmarc_report_address.strip() or f"dmarc@{self.inbound_domain}").lower()

    @property
    def tls_report_mailbox(self) -> str:
        return (self.tls_report_address.strip() or f"tls-rpt@{self.inbound_domain}").lower()

    @field_validator("dns_resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        if value.strip():
            dns_resolver(value)
        return value

    geoip_database: str = Field(
        default="",
        description="A MaxMind-format .mmdb (GeoLite2/GeoIP2 City, DB-IP City Lite) for the Geo of opens and clicks; "
        "empty: geoip2fast's bundled country database. Read on this machine, never a network call",
    )
    tracking_base_url: str = Field(
        default="",
        description="Public base of the open, click and unsubscribe URLs written into mail; PUBLIC_URL or the API's own URL when empty",
    )

    @property
    def tracking_url(self) -> str:
        return (self.tracking_base_url or self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @field_validator("system_from")
    @classmethod
    def _system_from(cls, value: str) -> str:
        value = value.strip()
        if value and (value.count("@") != 1 or any(c in value for c in " <>\r\n,;")):
            raise ValueError(f"SYSTEM_FROM must be a bare email address, not {value!r}")
        return value

    @property
    def public_base_url(self) -> str:
        """Where users reach the API: PUBLIC_URL, else http://API_HOST:API_PORT (no trailing slash)."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def system_sender(self) -> str:
        """The From address of Postgate's own mail."""
        return self.system_from or f"postgate@{self.return_path_domain}"

    @property
    def verp_key(self) -> str:
        """The installation key that signs return paths ("" when neither VERP_SECRET nor ACCOUNT_TOKEN is set)."""
        return self.verp_secret or self.account_token

    @property
    def verp_keys(self) -> list[str]:
        """The keys a return path may have been signed with, the current one first."""
        keys = [self.verp_key, *(k.strip() for k in self.verp_secret_previous.split(","))]
        return list(dict.fromkeys(k for k in keys if k))

    def webhook_url_guard(self) -> UrlGuard:
        """Where webhook URLs may point: public addresses and WEBHOOK_ALLOWED_NETWORKS."""
        return UrlGuard(
            allowed=tuple(parse_networks(self.webhook_allowed_networks)),
            resolver=dns_resolver(self.dns_resolver) if self.dns_resolver.strip() else None,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
