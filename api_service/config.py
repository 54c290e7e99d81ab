"""Settings, from environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    worker_poll_seconds: float = 0.5
    webhook_retry_schedule: str = Field(
        default="60,300,600,600,600,900,1800,3600,7200,21600", description="Seconds between webhook attempts"
    )
    webhook_timeout_seconds: float = 10
    message_id_domain: str = Field(default="", description="Right-hand side of generated Message-IDs; the From domain when empty")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    public_url: str = Field(default="", description="Base URL used for ServerLink")
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
