"""trust: lease tokens (fencing), an index for expired leases, bounce dumps stored once

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Column additions without defaults are catalogue changes; what reads a big table (index builds,
    # the foreign key's check of every bounce) runs after this transaction commits, without
    # holding its ACCESS EXCLUSIVE locks, so a live database keeps sending meanwhile.
    op.add_column("message_recipients", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.create_table(
        "bounce_dumps",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], name=op.f("fk_bounce_dumps_server_id_servers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_dumps")),
    )
    op.create_index(op.f("ix_bounce_dumps_server_id"), "bounce_dumps", ["server_id"], unique=False)
    op.add_column("bounces", sa.Column("dump_id", sa.BigInteger(), nullable=True))
    op.execute(
        "ALTER TABLE bounces ADD CONSTRAINT fk_bounces_dump_id_bounce_dumps"
        " FOREIGN KEY (dump_id) REFERENCES bounce_dumps (id) ON DELETE SET NULL NOT VALID"
    )
    with op.get_context().autocommit_block():
        _create_index_concurrently("ix_message_recipients_leased", "message_recipients", "lease_until", "status = 'sending'")
        _create_index_concurrently("ix_bounces_dump_id", "bounces", "dump_id")
        # SHARE UPDATE EXCLUSIVE: bounces are still read and written while it is checked.
        op.execute("ALTER TABLE bounces VALIDATE CONSTRAINT fk_bounces_dump_id_bounce_dumps")


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
    op.drop_constraint(op.f("fk_bounces_dump_id_bounce_dumps"), "bounces", type_="foreignkey")
    op.drop_index(op.f("ix_bounces_dump_id"), table_name="bounces")
    op.drop_column("bounces", "dump_id")
    op.drop_index(op.f("ix_bounce_dumps_server_id"), table_name="bounce_dumps")
    op.drop_table("bounce_dumps")
    op.drop_column("webhook_deliveries", "lease_token")
    op.drop_index("ix_message_recipients_leased", table_name="message_recipients", postgresql_where=sa.text("status = 'sending'"))
    op.drop_column("message_recipients", "lease_token")
