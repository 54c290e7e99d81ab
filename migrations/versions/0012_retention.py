"""retention: per-server RetentionDays and the indexes the purge scans

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 21:20:00.000000

The column is nullable without a default (a catalogue change, no rewrite). The indexes are built
CONCURRENTLY, outside the migration's transaction, so sending and the worker go on while they build
on a large database; an index left invalid by an interrupted build is dropped and built again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name → (table, columns, partial-index predicate)
INDEXES: dict[str, tuple[str, str, str]] = {
    "ix_bounce_dumps_server_id_created_at": ("bounce_dumps", "server_id, created_at", ""),
    "ix_idempotency_keys_created_at": ("idempotency_keys", "created_at", ""),
    "ix_webhook_deliveries_finished": ("webhook_deliveries", "server_id, created_at", "status <> 'pending'"),
}


def _create_index_concurrently(name: str, table: str, columns: str, where: str) -> None:
    # A CONCURRENTLY build that failed (a lock timeout, a restart) leaves an INVALID index that
    # IF NOT EXISTS would keep; drop it so that re-running the migration finishes the job.
    invalid = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :name AND NOT i.indisvalid"),
        {"name": name},
    )
    if invalid.first() is not None:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({columns})" + (f" WHERE {where}" if where else ""))


def upgrade() -> None:
    op.add_column("servers", sa.Column("retention_days", sa.Integer(), nullable=True))
    with op.get_context().autocommit_block():
        for name, (table, columns, where) in INDEXES.items():
            _create_index_concurrently(name, table, columns, where)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.drop_column("servers", "retention_days")
