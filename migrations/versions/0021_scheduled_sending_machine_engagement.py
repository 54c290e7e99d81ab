"""scheduled sending; opens and clicks by machines

Revision ID: 0021
Revises: 0013
Create Date: 2026-12-08 01:55:00.000000

`messages.send_at`: when a scheduled message's recipients are released (their queue rows are due
then: the claim's `next_attempt_at <= now()` keeps them back). NULL for a message sent at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "send_at")
