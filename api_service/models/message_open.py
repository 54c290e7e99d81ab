from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import Platform


class MessageOpen(CreatedAtMixin, Base):
    """One fetch of a recipient's open-tracking pixel; `created_at` is Postmark's ReceivedAt.

    The stream and tag are copied from the message so that the opens API and the stats filter
    and group one table by its own indexed columns.
    """

    __tablename__ = "message_opens"
    __table_args__ = (
        Index("ix_message_opens_server_id_created_at", "server_id", "created_at"),
        Index("uq_message_opens_first", "message_id", "recipient", unique=True, postgresql_where=text("first_open")),
        # Beyond Postmark: a person's first (machines' hits before it do not count), for PostFirstOpenOnly and the stats.
        Index("uq_message_opens_first_human", "message_id", "recipient", unique=True, postgresql_where=text("first_human")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    message_stream: Mapped[str] = mapped_column(String(30))
    tag: Mapped[str] = mapped_column(String(1000), default="")
    recipient: Mapped[str] = mapped_column(String(320))
    first_open: Mapped[bool] = mapped_column(default=False)
    user_agent: Mapped[str] = mapped_column(Text, default="")
    client_name: Mapped[str] = mapped_column(String(200), default="")
    client_company: Mapped[str] = mapped_column(String(200), default="")
    client_family: Mapped[str] = mapped_column(String(200), default="")
    os_name: Mapped[str] = mapped_column(String(200), default="")
    os_company: Mapped[str] = mapped_column(String(200), default="")
    os_family: Mapped[str] = mapped_column(String(200), default="")
    platform: Mapped[Platform] = mapped_column(StrEnumType(Platform, 10), default=Platform.UNKNOWN)
    read_seconds: Mapped[int] = mapped_column(default=0)
    ip: Mapped[str] = mapped_column(String(45), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country_iso: Mapped[str] = mapped_column(String(2), default="", server_default="")
    region_iso: Mapped[str] = mapped_column(String(10), default="", server_default="")
    coords: Mapped[str] = mapped_column(String(40), default="", server_default="", doc="Postmark's Geo.Coords: 'latitude,longitude'")
    machine: Mapped[bool] = mapped_column(default=False, server_default=false(), doc="Beyond Postmark: a proxy or scanner, not a person")
    machine_reason: Mapped[str] = mapped_column(String(40), default="", server_default="", doc="Which rule of tracking/machines.toml")
    first_human: Mapped[bool] = mapped_column(default=False, server_default=false())
