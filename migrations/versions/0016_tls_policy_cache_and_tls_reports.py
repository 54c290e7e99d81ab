"""MTA-STS policy cache and TLS-RPT session counts and reports

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 01:39:38.236055

Three new tables, nothing existing changes: `mta_sts_policies` keeps each recipient domain's last
valid MTA-STS policy until it expires (RFC 8461 §5.1), `tls_report_sessions` counts delivery
sessions per UTC day, policy and failure (RFC 8460), `tls_reports` keeps each daily report sent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mta_sts_policies",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("mx", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=False),
        sa.Column("policy_text", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_mta_sts_policies")),
    )
    op.create_table(
        "tls_report_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("policy_domain", sa.String(length=253), nullable=False),
        sa.Column("policy_key", sa.String(length=64), nullable=False),
        sa.Column("policy_type", sa.String(length=20), nullable=False),
        sa.Column("policy_strings", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("mx_hosts", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("result_type", sa.String(length=40), nullable=False),
        sa.Column("receiving_mx", sa.String(length=253), nullable=False),
        sa.Column("receiving_ip", sa.String(length=64), nullable=False),
        sa.Column("sending_ip", sa.String(length=64), nullable=False),
        sa.Column("sessions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_report_sessions")),
        sa.UniqueConstraint(
            "day",
            "policy_domain",
            "policy_key",
            "result_type",
            "receiving_mx",
            "receiving_ip",
            "sending_ip",
            name="uq_tls_report_sessions_key",
        ),
    )
    op.create_index(op.f("ix_tls_report_sessions_day"), "tls_report_sessions", ["day"], unique=False)
    op.create_table(
        "tls_reports",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("policy_domain", sa.String(length=253), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("report_id", sa.String(length=200), nullable=False),
        sa.Column("rua", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("successful_sessions", sa.Integer(), nullable=False),
        sa.Column("failed_sessions", sa.Integer(), nullable=False),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_reports")),
        sa.UniqueConstraint("policy_domain", "day", name="uq_tls_reports_policy_domain_day"),
        sa.UniqueConstraint("report_id", name=op.f("uq_tls_reports_report_id")),
    )
    op.create_index(op.f("ix_tls_reports_day"), "tls_reports", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tls_reports_day"), table_name="tls_reports")
    op.drop_table("tls_reports")
    op.drop_index(op.f("ix_tls_report_sessions_day"), table_name="tls_report_sessions")
    op.drop_table("tls_report_sessions")
    op.drop_table("mta_sts_policies")
