"""SMTP gateway settings, from environment variables."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from shared.constants import MAX_MESSAGE_BYTES, MAX_RECIPIENTS_PER_FIELD
from shared.schemas.smtp import SMTP_BATCH_MAX_MESSAGES


def parse_networks(value: str) -> list[IPv4Network | IPv6Network]:
    """Comma-separated IPs or CIDRs; raises ValueError on a bad one."""
    return [ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]


INTERNAL_TOKEN_MIN_CHARS = 20  # the API's rule (api_service.config)


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_extra_ports: str = Field(default="", description="More plain/STARTTLS ports, comma-separated (compose: 587,2525)")
    smtp_hostname: str = Field(default="postgate", description="Name in the greeting and EHLO reply")
    api_url: str = "http://127.0.0.1:8000"
    api_timeout_seconds: float = 30.0
    smtp_batch_max_messages: int = Field(
        default=64,
        ge=1,
        le=SMTP_BATCH_MAX_MESSAGES,
        description="Messages handed to the API in one call and one transaction (1: no batching)",
    )
    smtp_batch_window_ms: float = Field(
        default=2.0, ge=0, le=100, description="How long a batch waits for company while another call is under way"
    )
    smtp_batch_in_flight: int = Field(
        default=4, ge=1, le=64, description="API calls with messages under way at once; more messages wait and join the next"
    )
    smtp_tls_cert: str = Field(default="", description="PEM certificate: enables STARTTLS")
    smtp_tls_key: str = ""
    smtp_tls_port: int = Field(default=0, description="Port for implicit TLS (0: none)")
    smtp_require_tls_for_auth: bool = Field(default=False, description="Refuse AUTH before STARTTLS")
    smtp_max_auth_failures: int = Field(default=5, description="Failed AUTHs on one connection before it is closed")
    smtp_ip_auth_failures: int = Field(default=30, description="Failed AUTHs per client IP within smtp_ip_window_seconds; 0 disables")
    smtp_ip_window_seconds: float = 600.0
    smtp_idle_timeout_seconds: float = 300.0
    smtp_max_message_bytes: int = MAX_MESSAGE_BYTES
    smtp_max_recipients: int = MAX_RECIPIENTS_PER_FIELD
    smtp_inbound_port: int = Field(
        default=0, description="The MX listener, no AUTH: inbound mail and reports mailed to the return path (0: off)"
    )
    return_path_domain: str = Field(default="bounces.localhost", description="Same as the API's RETURN_PATH_DOMAIN")
    inbound_domain: str = Field(default="inbound.localhost", description="Same as the API's INBOUND_DOMAIN")
    smtp_inbound_trusted_filters: str = Field(
        default="",
        description="Comma-separated IPs or CIDRs of the spam filter hop(s) in front of the MX listener; only their X-Spam-* headers are kept",
    )
    smtp_inbound_cache_seconds: float = Field(
        default=30.0, description="How long the listener remembers which recipients the API accepts, and which domains are return paths"
    )
    smtp_inbound_ip_connections_per_minute: int = Field(
        default=60, ge=0, description="Connections to the MX listener per client IP (IPv6: per /64) a minute, then 421 4.7.0 (0: no limit)"
    )
    smtp_inbound_ip_messages_per_minute: int = Field(
        default=60, ge=0, description="Messages (DATA) to the MX listener per client IP a minute, then 451 4.7.1 (0: no limit)"
    )
    smtp_inbound_ip_bytes_per_minute: int = Field(
        default=50_000_000, ge=0, description="Message bytes to the MX listener per client IP a minute, then 451 4.7.1 (0: no limit)"
    )
    account_token: str = Field(default="", description="Lets the MX listener hand mail and reports to the API")
    internal_token: str = Field(
        default="", description="The API's INTERNAL_TOKEN, sent as a bearer token on /internal/smtp/*; ACCOUNT_TOKEN stands in when empty"
    )
    smtp_metrics_port: int = Field(default=0, ge=0, description="Port of the gateway's /metrics (0: off)")
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics listener")
    metrics_token: str = Field(default="", description="When set, /metrics requires Authorization: Bearer <token>")
    log_format: Literal["text", "json"] = Field(default="text", description="text (readable) or json (one object a line)")
    log_level: str = Field(default="INFO", description="Python logging level")

    @field_validator("smtp_inbound_trusted_filters")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("internal_token")
    @classmethod
    def _internal_token(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < INTERNAL_TOKEN_MIN_CHARS:
            raise ValueError(f"INTERNAL_TOKEN must be empty or at least {INTERNAL_TOKEN_MIN_CHARS} characters, as the API requires")
        return value

    @property
    def internal_credential(self) -> str:
        """The bearer token for /internal/smtp/*: INTERNAL_TOKEN, else ACCOUNT_TOKEN (as the API decides)."""
        return self.internal_token or self.account_token.strip()

    @property
    def trusted_filters(self) -> list[IPv4Network | IPv6Network]:
        return parse_networks(self.smtp_inbound_trusted_filters)

    @property
    def ports(self) -> list[int]:
        extra = [int(p) for p in self.smtp_extra_ports.replace(" ", "").split(",") if p]
        return [self.smtp_port, *[p for p in extra if p != self.smtp_port]]
