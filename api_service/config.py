"""Settings, from environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_service.core.netguard import dns_resolver, parse_networks


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
    dns_resolver: str = Field(default="", description="host[:port] of the DNS server for MX and address lookups; empty: the system's")
    worker_poll_seconds: float = 0.5
    bulk_batch_size: int = Field(default=500, ge=1, description="Bulk API entries the worker turns into messages per transaction")
    webhook_retry_schedule: str = Field(
        default="60,300,600,600,600,900,1800,3600,7200,21600", description="Seconds between webhook attempts"
    )
    webhook_timeout_seconds: float = 10
    message_id_domain: str = Field(default="", description="Right-hand side of generated Message-IDs; the From domain when empty")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    public_url: str = Field(default="", description="Base URL used for ServerLink")
    # Shown on the console's SMTP connection card; the gateway itself reads the same variables.
    smtp_extra_ports: str = Field(default="", description="More SMTP ports, comma-separated, as the gateway's SMTP_EXTRA_PORTS")
    smtp_tls_cert: str = Field(default="", description="Set when the gateway offers STARTTLS")
    smtp_tls_port: int = Field(default=0, description="The gateway's implicit-TLS port (0: none)")
    console_session_hours: float = Field(default=12, description="A console sign-in lasts this long")
    console_failures_per_user: int = Field(default=10, description="Failed console sign-ins per user name in the window before refusing")
    console_failures_per_ip: int = Field(default=50, description="Failed console sign-ins per client IP in the window before refusing")
    console_failure_window_seconds: float = 900

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

    tracking_base_url: str = Field(
        default="",
        description="Public base of the open, click and unsubscribe URLs written into mail; PUBLIC_URL or the API's own URL when empty",
    )

    @property
    def tracking_url(self) -> str:
        return (self.tracking_base_url or self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
