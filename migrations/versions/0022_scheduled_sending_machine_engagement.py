"""scheduled sending; opens and clicks by machines

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 01:55:00.000000

`messages.send_at`: when a scheduled message's recipients are released (their queue rows are due
then: the claim's `next_attempt_at <= now()` keeps them back). NULL for a message sent at once.

Opens and clicks (beyond Postmark): `machine` and `machine_reason` (tracking/machines.toml), `first_human` (a
person's first, unique per recipient as `first_open` / per link as `first_click`, so PostFirstOpenOnly and the
stats count people), and the Geo fields Postmark has that had no column: `country_iso`, `region_iso`, `coords`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BACKFILL = {
    "message_opens": "UPDATE message_opens SET first_human = first_open",
    "message_clicks": "UPDATE message_clicks SET first_human = first_click",
}
READ_TABLES = {"message_opens": ("message_id", "recipient"), "message_clicks": ("message_id", "recipient", "link_sha256")}


def upgrade() -> None:
    op.add_column("messages", sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
    for table, unique in READ_TABLES.items():
        op.add_column(table, sa.Column("country_iso", sa.String(2), server_default="", nullable=False))
        op.add_column(table, sa.Column("region_iso", sa.String(10), server_default="", nullable=False))
        op.add_column(table, sa.Column("coords", sa.String(40), server_default="", nullable=False))
        op.add_column(table, sa.Column("machine", sa.Boolean(), server_default=sa.false(), nullable=False))
        op.add_column(table, sa.Column("machine_reason", sa.String(40), server_default="", nullable=False))
        op.add_column(table, sa.Column("first_human", sa.Boolean(), server_default=sa.false(), nullable=False))
        # Every hit recorded before this revision was counted as a person: its first stays the person's first.
        op.execute(BACKFILL[table])
        op.create_index(f"uq_{table}_first_human", table, list(unique), unique=True, postgresql_where=sa.text("first_human"))


def downgrade() -> None:
    for table in READ_TABLES:
        op.drop_index(f"uq_{table}_first_human", table_name=table)
        for column in ("first_human", "machine_reason", "machine", "coords", "region_iso", "country_iso"):
            op.drop_column(table, column)
    op.drop_column("messages", "send_at")
