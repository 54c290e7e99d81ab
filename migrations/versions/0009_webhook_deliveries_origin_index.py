"""index the webhook POSTs about one record

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00.000000

The console's inbound message page lists the hook attempts of one message (`origin_id`); without
this index that reads every webhook row of the server. Partial: most rows have no origin.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_origin",
        "webhook_deliveries",
        ["server_id", "record_type", "origin_id"],
        unique=False,
        postgresql_where=sa.text("origin_id <> ''"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_origin", table_name="webhook_deliveries", postgresql_where=sa.text("origin_id <> ''"))
