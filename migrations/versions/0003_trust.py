"""trust: lease tokens (fencing), an index for expired leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("message_recipients", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_message_recipients_leased",
        "message_recipients",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.add_column("webhook_deliveries", sa.Column("lease_token", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "lease_token")
    op.drop_index("ix_message_recipients_leased", table_name="message_recipients", postgresql_where=sa.text("status = 'sending'"))
    op.drop_column("message_recipients", "lease_token")
