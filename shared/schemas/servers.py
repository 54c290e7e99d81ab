"""Server settings: `/server` and `/servers`."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class ServerEdit(WireModel):
    """Editable server fields; every one is optional on `PUT`."""

    Name: str | None = Field(default=None, description="Unique in the account")
    Color: str | None = Field(default=None, description="Purple, Blue, Turquoise, Green, Red, Yellow, Grey or Orange")
    SmtpApiActivated: bool | None = Field(default=None, description="Allow sending over SMTP (default false)")
    RawEmailEnabled: bool | None = None
    InboundHookUrl: str | None = None
    BounceHookUrl: str | None = None
    OpenHookUrl: str | None = None
    DeliveryHookUrl: str | None = None
    ClickHookUrl: str | None = None
    PostFirstOpenOnly: bool | None = None
    InboundDomain: str | None = None
    InboundSpamThreshold: int | None = Field(default=None, description="0-30 in steps of 5")
    TrackOpens: bool | None = None
    TrackLinks: str | None = Field(default=None, description="None | HtmlAndText | HtmlOnly | TextOnly")
    IncludeBounceContentInHook: bool | None = None
    EnableSmtpApiErrorHooks: bool | None = Field(default=None, description="Send SMTPApiError bounces to the bounce webhook")
    RetentionDays: int | None = Field(
        default=None,
        description="Days messages, bounces and webhook history are kept, 7-365 (Postmark's range); account token only (a Postgate addition)",
    )

    model_config = WireModel.model_config | {
        "json_schema_extra": {
            "examples": [{"SmtpApiActivated": True, "BounceHookUrl": "https://example.com/hooks/bounce", "TrackOpens": False}]
        }
    }


class ServerCreate(ServerEdit):
    """A new server: `Name` is required; `DeliveryType` is fixed at creation."""

    DeliveryType: str | None = Field(default=None, description="Live (default) or Sandbox")

    model_config = ServerEdit.model_config | {
        "json_schema_extra": {"examples": [{"Name": "Production", "Color": "Blue", "SmtpApiActivated": True}]}
    }


class SmtpConnectionInfo(WireResponse):
    """How to connect to the SMTP gateway (a Postgate addition)."""

    Host: str
    Ports: list[int]
    Username: str
    Password: str
    AuthMechanisms: list[str]


class Server(WireResponse):
    """A server as Postmark shows it."""

    ID: int
    Name: str
    ApiTokens: list[str] = Field(description="Full tokens only in the response that created them; otherwise masked")
    ServerLink: str
    Color: str
    SmtpApiActivated: bool
    RawEmailEnabled: bool
    DeliveryType: str
    InboundAddress: str
    InboundHookUrl: str
    BounceHookUrl: str
    OpenHookUrl: str
    DeliveryHookUrl: str
    ClickHookUrl: str
    PostFirstOpenOnly: bool
    InboundDomain: str
    InboundHash: str
    InboundSpamThreshold: int
    TrackOpens: bool
    TrackLinks: str
    IncludeBounceContentInHook: bool
    EnableSmtpApiErrorHooks: bool
    RetentionDays: int = Field(
        description="Days messages, bounces and webhook history are kept: the server's own, else RETENTION_DAYS (a Postgate addition)"
    )
    SmtpConnection: SmtpConnectionInfo | None = None
    WebhookSecret: str = Field(default="", description="Key of the X-Postgate-Signature HMAC on webhook requests (a Postgate addition)")


class ServerList(WireResponse):
    TotalCount: int
    Servers: list[Server]
