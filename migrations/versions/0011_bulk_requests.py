"""bulk requests: the Bulk API's requests and their entries waiting to be expanded

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:10:55.965130
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulk_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("message_stream", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("progressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], name=op.f("fk_bulk_requests_server_id_servers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_requests")),
    )
    op.create_index(
        "ix_bulk_requests_due", "bulk_requests", ["progressed_at"], unique=False, postgresql_where=sa.text("status <> 'Completed'")
    )
    op.create_index("ix_bulk_requests_server_id_created_at", "bulk_requests", ["server_id", "created_at"], unique=False)
    op.create_table(
        "bulk_entries",
        sa.Column("bulk_request_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("entry", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulk_request_id"], ["bulk_requests.id"], name=op.f("fk_bulk_entries_bulk_request_id_bulk_requests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bulk_request_id", "position", name=op.f("pk_bulk_entries")),
    )


def downgrade() -> None:
    op.drop_table("bulk_entries")
    op.drop_index("ix_bulk_requests_server_id_created_at", table_name="bulk_requests")
    op.drop_index("ix_bulk_requests_due", table_name="bulk_requests", postgresql_where=sa.text("status <> 'Completed'"))
    op.drop_table("bulk_requests")
