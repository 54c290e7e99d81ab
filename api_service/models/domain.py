from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin


class Domain(CreatedAtMixin, Base):
    """A sending domain: every address on it may send once it is confirmed.

    `dkim_*` is the key that signs; `dkim_pending_*` a new key waiting to be seen in DNS (it
    replaces the signing key then); `dkim_revoked_*` the key it replaced, to be removed from DNS.
    """

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, doc="Lower-cased")
    return_path_domain: Mapped[str] = mapped_column(String(255), default="")
    dkim_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_private_key: Mapped[str] = mapped_column(Text, default="", doc="PEM; never returned by the API")
    dkim_public_key: Mapped[str] = mapped_column(Text, default="", doc="Base64 DER, the DNS p= value")
    dkim_verified: Mapped[bool] = mapped_column(default=False)
    spf_verified: Mapped[bool] = mapped_column(default=False)
    return_path_verified: Mapped[bool] = mapped_column(default=False)
    confirmed: Mapped[bool] = mapped_column(default=False, doc="May send: SENDER_AUTO_CONFIRM, or its DKIM record was seen in DNS")
    dkim_pending_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_pending_private_key: Mapped[str] = mapped_column(Text, default="", doc="PEM; never returned by the API")
    dkim_pending_public_key: Mapped[str] = mapped_column(Text, default="")
    dkim_revoked_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_revoked_public_key: Mapped[str] = mapped_column(Text, default="")
    dkim_revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    dkim_checked_at: Mapped[datetime | None] = mapped_column(default=None, doc="Last DNS look-up by the worker")
    tracking_domain: Mapped[str] = mapped_column(
        String(255), default="", doc="Host of the open and click URLs of this domain's mail once verified (a CNAME of the tracking host)"
    )
    tracking_verified: Mapped[bool] = mapped_column(default=False)
    # An optional Ed25519 key (RFC 8463) signing beside the RSA one once seen in DNS, with the same
    # pending/revoked life as the RSA key; its private key is the base64 raw 32-byte seed dkimpy takes.
    dkim_ed25519_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_ed25519_private_key: Mapped[str] = mapped_column(Text, default="", doc="Base64 seed; never returned by the API")
    dkim_ed25519_public_key: Mapped[str] = mapped_column(Text, default="", doc="Base64 raw key, the DNS p= value")
    dkim_ed25519_verified: Mapped[bool] = mapped_column(default=False, doc="Seen in DNS: it signs from then on")
    dkim_ed25519_pending_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_ed25519_pending_private_key: Mapped[str] = mapped_column(Text, default="", doc="Never returned by the API")
    dkim_ed25519_pending_public_key: Mapped[str] = mapped_column(Text, default="")
    dkim_ed25519_revoked_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_ed25519_revoked_public_key: Mapped[str] = mapped_column(Text, default="")
    dkim_ed25519_revoked_at: Mapped[datetime | None] = mapped_column(default=None)
