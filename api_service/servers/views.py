"""How a server looks on the wire (`GET /server`, `/servers`) and in the console's settings page.

Both the API router and the console build the same `Server` document from a row, so it lives
here, below both, rather than in either one's router.
"""

from __future__ import annotations

from api_service.config import Settings
from api_service.models import Server as ServerRow
from shared.schemas.servers import Server, SmtpConnectionInfo

MASK = "********-****-****-****-********"


def to_wire(server: ServerRow, *, tokens: list[str], settings: Settings) -> Server:
    base = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    # The SMTP credentials are the token itself, when this response may show it.
    shown = next((t for t in tokens if not t.startswith(MASK)), "<server API token>")
    return Server(
        ID=server.id,
        Name=server.name,
        ApiTokens=tokens,
        ServerLink=f"{base.rstrip('/')}/servers/{server.id}",
        Color=server.color,
        SmtpApiActivated=server.smtp_api_activated,
        RawEmailEnabled=server.raw_email_enabled,
        DeliveryType=server.delivery_type,
        InboundAddress=f"{server.inbound_hash}@{settings.inbound_domain}",
        InboundHookUrl=server.inbound_hook_url,
        BounceHookUrl=server.bounce_hook_url,
        OpenHookUrl=server.open_hook_url,
        DeliveryHookUrl=server.delivery_hook_url,
        ClickHookUrl=server.click_hook_url,
        PostFirstOpenOnly=server.post_first_open_only,
        InboundDomain=server.inbound_domain,
        InboundHash=server.inbound_hash,
        InboundSpamThreshold=server.inbound_spam_threshold,
        TrackOpens=server.track_opens,
        TrackLinks=server.track_links,
        IncludeBounceContentInHook=server.include_bounce_content_in_hook,
        EnableSmtpApiErrorHooks=server.enable_smtp_api_error_hooks,
        WebhookSecret=server.webhook_secret,
        RetentionDays=server.retention_days or settings.retention_days,
        SmtpConnection=SmtpConnectionInfo(
            Host=settings.smtp_public_host or settings.smtp_host,
            Ports=[settings.smtp_port],
            Username=shown,
            Password=shown,
            AuthMechanisms=["PLAIN", "LOGIN", "CRAM-MD5"],
        ),
    )
