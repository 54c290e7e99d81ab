"""delivery destinations: learned limits, shared connection slots, domain → destination, warm-up counts

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 01:40:00.000000

Four new, small tables: nothing on a live database is rewritten or locked. The queue's rows are not
changed: the claim derives a recipient's domain from its address and finds its destination in
delivery_domains.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_destinations",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("connections", sa.Integer(), nullable=False),
        sa.Column("rate_factor", sa.Float(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("throttles", sa.Integer(), nullable=False),
        sa.Column("throttled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tat_second_us", sa.BigInteger(), nullable=True),
        sa.Column("tat_minute_us", sa.BigInteger(), nullable=True),
        sa.Column("tat_hour_us", sa.BigInteger(), nullable=True),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("throttled", sa.BigInteger(), nullable=False),
        sa.Column("last_reply", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_delivery_destinations")),
    )
    op.create_table(
        "delivery_domains",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_delivery_domains")),
    )
    op.create_index(op.f("ix_delivery_domains_destination"), "delivery_domains", ["destination"], unique=False)
    op.create_table(
        "delivery_slots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.Uuid(), nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_slots")),
    )
    op.create_index(op.f("ix_delivery_slots_destination"), "delivery_slots", ["destination"], unique=False)
    op.create_table(
        "delivery_ip_days",
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source_ip", "provider", "day", name=op.f("pk_delivery_ip_days")),
    )


def downgrade() -> None:
    op.drop_table("delivery_ip_days")
    op.drop_index(op.f("ix_delivery_slots_destination"), table_name="delivery_slots")
    op.drop_table("delivery_slots")
    op.drop_index(op.f("ix_delivery_domains_destination"), table_name="delivery_domains")
    op.drop_table("delivery_domains")
    op.drop_table("delivery_destinations")
