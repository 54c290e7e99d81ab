"""a sending domain's own tracking host, its optional Ed25519 DKIM key, streams paused on complaints

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 02:00:00.000000

`tracking_domain` (a CNAME of the tracking host, verified like the return path) is the host of the
open and click URLs in the domain's mail once `tracking_verified`. `dkim_ed25519_*` is an optional
second DKIM key (RFC 8463) with the RSA key's pending/revoked columns. A message stream pauses
(`paused_at`) when its spam complaint rate passes the line, unless `pause_on_complaints` is off.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ED25519_TEXT = [
    ("dkim_ed25519_selector", sa.String(length=63)),
    ("dkim_ed25519_private_key", sa.Text()),
    ("dkim_ed25519_public_key", sa.Text()),
    ("dkim_ed25519_pending_selector", sa.String(length=63)),
    ("dkim_ed25519_pending_private_key", sa.Text()),
    ("dkim_ed25519_pending_public_key", sa.Text()),
    ("dkim_ed25519_revoked_selector", sa.String(length=63)),
    ("dkim_ed25519_revoked_public_key", sa.Text()),
]


def upgrade() -> None:
    op.add_column("domains", sa.Column("tracking_domain", sa.String(length=255), nullable=False, server_default=""))
    op.add_column("domains", sa.Column("tracking_verified", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name, type_ in ED25519_TEXT:
        op.add_column("domains", sa.Column(name, type_, nullable=False, server_default=""))
    op.add_column("domains", sa.Column("dkim_ed25519_verified", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("domains", sa.Column("dkim_ed25519_revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("message_streams", sa.Column("pause_on_complaints", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("message_streams", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("message_streams", sa.Column("paused_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("message_streams", "paused_reason")
    op.drop_column("message_streams", "paused_at")
    op.drop_column("message_streams", "pause_on_complaints")
    op.drop_column("domains", "dkim_ed25519_revoked_at")
    op.drop_column("domains", "dkim_ed25519_verified")
    for name, _ in reversed(ED25519_TEXT):
        op.drop_column("domains", name)
    op.drop_column("domains", "tracking_verified")
    op.drop_column("domains", "tracking_domain")
