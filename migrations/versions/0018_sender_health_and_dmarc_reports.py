"""sender health checks, and the DMARC and TLS reports received

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 01:33:28.545871

New tables only: the last health checks of each domain and sending IP (JSONB lists, rewritten
whole by each check), and the DMARC aggregate/failure and SMTP TLS reports received, per domain,
deleted with their domain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_ip_health",
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("ip", name=op.f("pk_source_ip_health")),
    )
    op.create_table(
        "dmarc_reports",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("domain_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("reporter", sa.String(length=255), nullable=False),
        sa.Column("reporter_email", sa.String(length=320), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("message_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_dmarc_reports_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_reports")),
        sa.UniqueConstraint("domain_id", "kind", "reporter", "report_id", name="uq_dmarc_reports_domain_id"),
    )
    op.create_index("ix_dmarc_reports_created_at", "dmarc_reports", ["created_at"], unique=False)
    op.create_table(
        "domain_health",
        sa.Column("domain_id", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("report_addresses", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_domain_health_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_domain_health")),
    )
    op.create_table(
        "received_tls_reports",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("domain_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter", sa.String(length=255), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("success_count", sa.BigInteger(), nullable=False),
        sa.Column("failure_count", sa.BigInteger(), nullable=False),
        sa.Column("policies", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_received_tls_reports_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_tls_reports")),
        sa.UniqueConstraint("domain_id", "reporter", "report_id", name="uq_received_tls_reports_domain_id"),
    )
    op.create_index("ix_received_tls_reports_created_at", "received_tls_reports", ["created_at"], unique=False)
    op.create_index("ix_received_tls_reports_domain_id_begin_at", "received_tls_reports", ["domain_id", "begin_at"], unique=False)
    op.create_table(
        "dmarc_report_rows",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("domain_id", sa.BigInteger(), nullable=False),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("ptr", sa.String(length=255), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("disposition", sa.String(length=20), nullable=False),
        sa.Column("dkim_aligned", sa.Boolean(), nullable=False),
        sa.Column("spf_aligned", sa.Boolean(), nullable=False),
        sa.Column("header_from", sa.String(length=255), nullable=False),
        sa.Column("envelope_from", sa.String(length=255), nullable=False),
        sa.Column("auth_results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("failure_detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"], name=op.f("fk_dmarc_report_rows_domain_id_domains"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["report_id"], ["dmarc_reports.id"], name=op.f("fk_dmarc_report_rows_report_id_dmarc_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_report_rows")),
    )
    op.create_index("ix_dmarc_report_rows_domain_id_begin_at", "dmarc_report_rows", ["domain_id", "begin_at"], unique=False)
    op.create_index(op.f("ix_dmarc_report_rows_report_id"), "dmarc_report_rows", ["report_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dmarc_report_rows_report_id"), table_name="dmarc_report_rows")
    op.drop_index("ix_dmarc_report_rows_domain_id_begin_at", table_name="dmarc_report_rows")
    op.drop_table("dmarc_report_rows")
    op.drop_index("ix_received_tls_reports_domain_id_begin_at", table_name="received_tls_reports")
    op.drop_index("ix_received_tls_reports_created_at", table_name="received_tls_reports")
    op.drop_table("received_tls_reports")
    op.drop_table("domain_health")
    op.drop_index("ix_dmarc_reports_created_at", table_name="dmarc_reports")
    op.drop_table("dmarc_reports")
    op.drop_table("source_ip_health")
