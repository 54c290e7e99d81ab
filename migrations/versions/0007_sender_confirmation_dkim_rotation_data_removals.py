"""sender confirmation, DKIM rotation, data removals

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:25:37.602411

Existing signatures stay confirmed (they were confirmed at creation) and existing domains stay
allowed to send, as before this revision; the server defaults exist only to fill those rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOMAIN_TEXT_COLUMNS = (
    ("dkim_pending_selector", sa.String(length=63)),
    ("dkim_pending_private_key", sa.Text()),
    ("dkim_pending_public_key", sa.Text()),
    ("dkim_revoked_selector", sa.String(length=63)),
    ("dkim_revoked_public_key", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "data_removals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("requested_for", sa.String(length=320), nullable=False),
        sa.Column("requested_for_sha256", sa.String(length=64), nullable=False),
        sa.Column("notify_when_completed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_removals")),
    )
    op.create_index("ix_data_removals_pending", "data_removals", ["id"], unique=False, postgresql_where=sa.text("status = 'Pending'"))

    op.add_column("domains", sa.Column("confirmed", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.alter_column("domains", "confirmed", server_default=None)
    for name, type_ in DOMAIN_TEXT_COLUMNS:
        op.add_column("domains", sa.Column(name, type_, server_default="", nullable=False))
        op.alter_column("domains", name, server_default=None)
    op.add_column("domains", sa.Column("dkim_revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("domains", sa.Column("dkim_checked_at", sa.DateTime(timezone=True), nullable=True))

    op.add_column("sender_signatures", sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sender_signatures", sa.Column("confirmation_token_sha256", sa.String(length=64), nullable=True))
    op.add_column("sender_signatures", sa.Column("confirmation_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sender_signatures", sa.Column("spf_verified", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.alter_column("sender_signatures", "spf_verified", server_default=None)
    op.create_unique_constraint(op.f("uq_sender_signatures_confirmation_token_sha256"), "sender_signatures", ["confirmation_token_sha256"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_sender_signatures_confirmation_token_sha256"), "sender_signatures", type_="unique")
    for column in ("spf_verified", "confirmation_expires_at", "confirmation_token_sha256", "confirmed_at"):
        op.drop_column("sender_signatures", column)
    for column in ("dkim_checked_at", "dkim_revoked_at", *(name for name, _ in reversed(DOMAIN_TEXT_COLUMNS)), "confirmed"):
        op.drop_column("domains", column)
    op.drop_index("ix_data_removals_pending", table_name="data_removals", postgresql_where=sa.text("status = 'Pending'"))
    op.drop_table("data_removals")
