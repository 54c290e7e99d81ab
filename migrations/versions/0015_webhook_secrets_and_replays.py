"""a signing key per webhook, rotated with an overlap; replays of past deliveries

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 01:50:00.000000

A webhook signs with the server's WebhookSecret until its key is first rotated; then with its
own, and for an overlap with both. An outbox row knows its webhook (for the key) and, when it is
a replay, the row it sends again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhooks", sa.Column("secret", sa.String(length=128), nullable=True))
    op.add_column("webhooks", sa.Column("previous_secret", sa.String(length=128), nullable=True))
    op.add_column("webhooks", sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("webhook_id", sa.BigInteger(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("replay_of", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_webhook_deliveries_webhook_id_webhooks"), "webhook_deliveries", "webhooks", ["webhook_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(
        "ix_webhook_deliveries_webhook",
        "webhook_deliveries",
        ["webhook_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("webhook_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_webhook", table_name="webhook_deliveries", postgresql_where=sa.text("webhook_id IS NOT NULL"))
    op.drop_constraint(op.f("fk_webhook_deliveries_webhook_id_webhooks"), "webhook_deliveries", type_="foreignkey")
    op.drop_column("webhook_deliveries", "replay_of")
    op.drop_column("webhook_deliveries", "webhook_id")
    op.drop_column("webhooks", "previous_secret_until")
    op.drop_column("webhooks", "previous_secret")
    op.drop_column("webhooks", "secret")
