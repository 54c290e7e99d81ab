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
    op.add_column("message_recipients", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_message_recipients_leased",
        "message_recipients",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )
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
    op.create_index(op.f("ix_bounces_dump_id"), "bounces", ["dump_id"], unique=False)
    op.create_foreign_key(op.f("fk_bounces_dump_id_bounce_dumps"), "bounces", "bounce_dumps", ["dump_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    op.drop_constraint(op.f("fk_bounces_dump_id_bounce_dumps"), "bounces", type_="foreignkey")
    op.drop_index(op.f("ix_bounces_dump_id"), table_name="bounces")
    op.drop_column("bounces", "dump_id")
    op.drop_index(op.f("ix_bounce_dumps_server_id"), table_name="bounce_dumps")
    op.drop_table("bounce_dumps")
    op.drop_column("webhook_deliveries", "lease_token")
    op.drop_index("ix_message_recipients_leased", table_name="message_recipients", postgresql_where=sa.text("status = 'sending'"))
    op.drop_column("message_recipients", "lease_token")
