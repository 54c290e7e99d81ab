"""console sign-in failures counted per (user name, client address)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:40:00.000000

One row per user name and client address holds the failures in a row, the last one and until
when that pair waits, so one statement counts a failure atomically (INSERT … ON CONFLICT DO
UPDATE … RETURNING) and a stranger's failures never lock the owner out from another address. The
rows are throttling state that expires within CONSOLE_FAILURE_WINDOW_SECONDS: the old table is
dropped rather than converted (at worst a guesser gets a fresh count after the upgrade).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "console_sign_in_failures"


def upgrade() -> None:
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", "client_ip", name=op.f("pk_console_sign_in_failures")),
    )
    op.create_index(op.f("ix_console_sign_in_failures_client_ip"), TABLE, ["client_ip"], unique=False)
    op.create_index(op.f("ix_console_sign_in_failures_last_failed_at"), TABLE, ["last_failed_at"], unique=False)


def downgrade() -> None:
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sign_in_failures")),
    )
    op.create_index(op.f("ix_console_sign_in_failures_client_ip"), TABLE, ["client_ip"], unique=False)
    op.create_index(op.f("ix_console_sign_in_failures_failed_at"), TABLE, ["failed_at"], unique=False)
    op.create_index(op.f("ix_console_sign_in_failures_username"), TABLE, ["username"], unique=False)
