"""templates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("alias_key", sa.String(length=255), nullable=True),
        sa.Column("template_type", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("layout_id", sa.BigInteger(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["layout_id"], ["templates.id"], name=op.f("fk_templates_layout_id_templates"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], name=op.f("fk_templates_server_id_servers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    op.create_index(op.f("ix_templates_layout_id"), "templates", ["layout_id"], unique=False)
    op.create_index(op.f("ix_templates_server_id"), "templates", ["server_id"], unique=False)
    op.create_index(
        "uq_templates_server_id_alias_key",
        "templates",
        ["server_id", "alias_key"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_templates_server_id_alias_key", table_name="templates", postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_index(op.f("ix_templates_server_id"), table_name="templates")
    op.drop_index(op.f("ix_templates_layout_id"), table_name="templates")
    op.drop_table("templates")
