"""Settings, from environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_service.core.netguard import UrlGuard, dns_resolver, parse_networks


class Settings(BaseSettings):
    """api_service and delivery worker settings."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = Field(default="postgresql://postgres@127.0.0.1:5432/postgate")
    account_token: str = Field(default="", description="Account API token; empty refuses every account request")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default=1, ge=1, description="uvicorn worker processes; one per core for throughput")
    api_access_log: bool = Field(default=False, description="One log line per request (costs about a tenth of throughput)")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_public_host: str = Field(default="", description="Host name shown in SMTP connection instructions")
    outbound_relay: str = Field(default="mx", description="smtp://[user:pass@]host:port[?starttls=true], or mx for direct delivery")
    return_path_domain: str = Field(
        default="bounces.localhost", description="Domain of the VERP envelope senders; point its MX at the inbound listener"
    )
    helo_name: str = Field(default="", description="Name given in EHLO when delivering; the machine's name when empty")
    delivery_retry_first_seconds: float = Field(default=900, description="First retry after a temporary failure; doubles each time")
    delivery_retry_horizon_seconds: float = Field(default=72 * 3600, description="Give up (SoftBounce) after this long")
    delivery_lease_seconds: float = Field(default=300, description="A claimed row returns to the queue if its worker is silent this long")
    delivery_concurrency: int = Field(default=20, description="Messages a worker delivers at once")
    delivery_batch_size: int = 100
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
    dns_resolver: str = Field(default="", description="host[:port] of the DNS server for MX and address lookups; empty: the system's")
    worker_poll_seconds: float = 0.5
    webhook_retry_schedule: str = Field(
        default="60,300,600,600,600,900,1800,3600,7200,21600", description="Seconds between webhook attempts"
    )
    webhook_timeout_seconds: float = Field(
        default=10, description="Longest one webhook request may take, redirects and a slow body included"
    )
    webhook_concurrency: int = Field(default=50, description="Webhook requests a worker has in flight at once")
    message_id_domain: str = Field(default="", description="Right-hand side of generated Message-IDs; the From domain when empty")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    public_url: str = Field(default="", description="Base URL used for ServerLink")

    @field_validator("mx_allowed_networks", "webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("dns_resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        if value.strip():
            dns_resolver(value)
        return value

    def webhook_url_guard(self) -> UrlGuard:
        """Where webhook URLs may point: public addresses and WEBHOOK_ALLOWED_NETWORKS."""
        return UrlGuard(
            allowed=tuple(parse_networks(self.webhook_allowed_networks)),
            resolver=dns_resolver(self.dns_resolver) if self.dns_resolver.strip() else None,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
