"""named, scoped, revocable API tokens and the append-only audit log

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 01:50:00.000000

A server's existing token becomes its token named "default" with scope "full". Account tokens
besides the ACCOUNT_TOKEN setting get their own table. The audit log is append-only: a trigger
refuses UPDATE, and DELETE unless the retention purge set `postgate.audit_purge` for its
transaction (`SET LOCAL`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('postgate.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.add_column("server_tokens", sa.Column("name", sa.String(length=64), nullable=False, server_default="default"))
    op.add_column("server_tokens", sa.Column("scope", sa.String(length=10), nullable=False, server_default="full"))
    op.add_column("server_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("server_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("server_tokens", sa.Column("last_used_ip", sa.String(length=64), nullable=True))
    # A server made before had exactly one token; should there be more, each gets its own name.
    op.execute(
        "UPDATE server_tokens t SET name = 'default-' || t.id WHERE EXISTS "
        "(SELECT 1 FROM server_tokens o WHERE o.server_id = t.server_id AND o.id < t.id)"
    )
    op.alter_column("server_tokens", "name", server_default=None)
    op.alter_column("server_tokens", "scope", server_default=None)
    op.create_unique_constraint("uq_server_tokens_server_id_name", "server_tokens", ["server_id", "name"])

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_account_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_account_tokens_token_sha256")),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"], unique=False)
    op.create_index(op.f("ix_audit_events_occurred_at"), "audit_events", ["occurred_at"], unique=False)
    op.create_index(op.f("ix_audit_events_server_id"), "audit_events", ["server_id"], unique=False)
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_index(op.f("ix_audit_events_server_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_occurred_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_action"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("account_tokens")
    op.drop_constraint("uq_server_tokens_server_id_name", "server_tokens", type_="unique")
    op.drop_column("server_tokens", "last_used_ip")
    op.drop_column("server_tokens", "last_used_at")
    op.drop_column("server_tokens", "expires_at")
    op.drop_column("server_tokens", "scope")
    op.drop_column("server_tokens", "name")
