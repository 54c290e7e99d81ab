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
    outbound_relay: str = "mx"
    message_id_domain: str = Field(default="", description="Right-hand side of generated Message-IDs; the From domain when empty")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    public_url: str = Field(default="", description="Base URL used for ServerLink")


@lru_cache
def get_settings() -> Settings:
    return Settings()
