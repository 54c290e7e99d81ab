"""keep a deleted server's tracking secret so the links of its mail still open

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 01:50:00.000000

A version 2 tracking token names its server and is sealed with that server's tracking secret;
deleting the server used to delete the key with it, so every tracked link and unsubscribe URL of
its mail answered 404. The secret now moves here when the server is deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retired_tracking_keys",
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tracking_secret", sa.String(length=128), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_retired_tracking_keys")),
    )


def downgrade() -> None:
    op.drop_table("retired_tracking_keys")
