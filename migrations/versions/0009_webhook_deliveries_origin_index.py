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
    with op.get_context().autocommit_block():
        _create_index_concurrently(
            "ix_webhook_deliveries_origin", "webhook_deliveries", "server_id, record_type, origin_id", "origin_id <> ''"
        )


def _create_index_concurrently(name: str, table: str, columns: str, where: str = "") -> None:
    # Built without blocking writes to a table that may be large by now (the revision was
    # first written with a plain CREATE INDEX). An INVALID leftover of an interrupted build would
    # satisfy IF NOT EXISTS, so it is dropped first and a re-run finishes the job.
    invalid = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :name AND NOT i.indisvalid"),
        {"name": name},
    )
    if invalid.first() is not None:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({columns})" + (f" WHERE {where}" if where else ""))


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_origin", table_name="webhook_deliveries", postgresql_where=sa.text("origin_id <> ''"))
