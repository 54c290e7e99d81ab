from __future__ import annotations

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import DeliveryType, TrackLinks


class Server(CreatedAtMixin, Base):
    """A Postmark server: a sending identity with its own tokens, settings and streams."""

    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    color: Mapped[str] = mapped_column(String(20), default="purple")
    smtp_api_activated: Mapped[bool] = mapped_column(default=False)
    raw_email_enabled: Mapped[bool] = mapped_column(default=False)
    delivery_type: Mapped[DeliveryType] = mapped_column(StrEnumType(DeliveryType, 10), default=DeliveryType.LIVE)
    inbound_hash: Mapped[str] = mapped_column(String(64))
    inbound_hook_url: Mapped[str] = mapped_column(Text, default="")
    bounce_hook_url: Mapped[str] = mapped_column(Text, default="")
    open_hook_url: Mapped[str] = mapped_column(Text, default="")
    delivery_hook_url: Mapped[str] = mapped_column(Text, default="")
    click_hook_url: Mapped[str] = mapped_column(Text, default="")
    post_first_open_only: Mapped[bool] = mapped_column(default=False)
    inbound_domain: Mapped[str] = mapped_column(String(255), default="")
    inbound_spam_threshold: Mapped[int] = mapped_column(default=0)
    track_opens: Mapped[bool] = mapped_column(default=False)
    track_links: Mapped[TrackLinks] = mapped_column(StrEnumType(TrackLinks, 20), default=TrackLinks.NONE)
    include_bounce_content_in_hook: Mapped[bool] = mapped_column(default=False)
    enable_smtp_api_error_hooks: Mapped[bool] = mapped_column(default=False)
    webhook_secret: Mapped[str] = mapped_column(String(128), doc="Key of the HMAC signature on webhook requests")
    tracking_secret: Mapped[str] = mapped_column(String(128), doc="Key that seals the open, click and unsubscribe URLs of its mail")
    retention_days: Mapped[int | None] = mapped_column(
        default=None, doc="Days its messages, bounces and webhook history are kept; null: the global RETENTION_DAYS"
    )
