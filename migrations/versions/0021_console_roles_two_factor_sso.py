"""console users with roles, invitations, two-factor and single sign-on

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 01:32:48.568968

Every existing console user becomes an Owner: until now each of them could change everything, so
nobody loses access by the upgrade. Per-server roles, invitations, recovery codes, passkeys, the
account's 2FA policy and single sign-ons under way get their own tables. A downgrade drops them;
users without a password (invited, SSO) are removed, as the older schema requires one. Sessions
now depend on the user's session version too, so named users sign in again after the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_oidc_logins",
        sa.Column("state_sha256", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_url", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_sha256", name=op.f("pk_console_oidc_logins")),
    )
    op.create_index(op.f("ix_console_oidc_logins_expires_at"), "console_oidc_logins", ["expires_at"], unique=False)
    op.create_table(
        "console_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("require_two_factor", sa.Boolean(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_console_policies_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_policies")),
    )
    op.create_table(
        "console_invitations",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"], ["console_users.username"], name=op.f("fk_console_invitations_username_console_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_console_invitations")),
    )
    op.create_index(op.f("ix_console_invitations_username"), "console_invitations", ["username"], unique=False)
    op.create_table(
        "console_passkeys",
        sa.Column("credential_id", sa.String(length=512), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"], ["console_users.username"], name=op.f("fk_console_passkeys_username_console_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_console_passkeys")),
    )
    op.create_index(op.f("ix_console_passkeys_username"), "console_passkeys", ["username"], unique=False)
    op.create_table(
        "console_recovery_codes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"], ["console_users.username"], name=op.f("fk_console_recovery_codes_username_console_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_recovery_codes")),
    )
    op.create_index(op.f("ix_console_recovery_codes_username"), "console_recovery_codes", ["username"], unique=False)
    op.create_table(
        "console_server_roles",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], name=op.f("fk_console_server_roles_server_id_servers"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["username"], ["console_users.username"], name=op.f("fk_console_server_roles_username_console_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("username", "server_id", name=op.f("pk_console_server_roles")),
    )
    op.create_index(op.f("ix_console_server_roles_server_id"), "console_server_roles", ["server_id"], unique=False)
    op.add_column("console_sessions", sa.Column("pending", sa.String(length=16), nullable=True))
    op.add_column("console_sessions", sa.Column("via_sso", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("console_sessions", sa.Column("challenge", sa.String(length=128), nullable=True))
    # Existing users become Owners; new rows always name their role, so the default goes again.
    op.add_column("console_users", sa.Column("role", sa.String(length=16), server_default="owner", nullable=False))
    op.alter_column("console_users", "role", server_default=None)
    op.add_column("console_users", sa.Column("email", sa.String(length=254), nullable=True))
    op.add_column("console_users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("console_users", sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))
    op.add_column("console_users", sa.Column("can_read_bodies", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("console_users", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column("console_users", sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("console_users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("console_users", sa.Column("oidc_subject", sa.String(length=255), nullable=True))
    op.alter_column("console_users", "password_hash", existing_type=sa.TEXT(), nullable=True)
    op.create_unique_constraint(op.f("uq_console_users_oidc_subject"), "console_users", ["oidc_subject"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_console_users_oidc_subject"), "console_users", type_="unique")
    op.execute("DELETE FROM console_sessions WHERE username IN (SELECT username FROM console_users WHERE password_hash IS NULL)")
    op.execute("DELETE FROM console_users WHERE password_hash IS NULL")
    op.alter_column("console_users", "password_hash", existing_type=sa.TEXT(), nullable=False)
    op.drop_column("console_users", "oidc_subject")
    op.drop_column("console_users", "totp_last_step")
    op.drop_column("console_users", "totp_enabled_at")
    op.drop_column("console_users", "totp_secret")
    op.drop_column("console_users", "can_read_bodies")
    op.drop_column("console_users", "session_version")
    op.drop_column("console_users", "disabled_at")
    op.drop_column("console_users", "email")
    op.drop_column("console_users", "role")
    op.drop_column("console_sessions", "challenge")
    op.drop_column("console_sessions", "via_sso")
    op.drop_column("console_sessions", "pending")
    op.drop_index(op.f("ix_console_server_roles_server_id"), table_name="console_server_roles")
    op.drop_table("console_server_roles")
    op.drop_index(op.f("ix_console_recovery_codes_username"), table_name="console_recovery_codes")
    op.drop_table("console_recovery_codes")
    op.drop_index(op.f("ix_console_passkeys_username"), table_name="console_passkeys")
    op.drop_table("console_passkeys")
    op.drop_index(op.f("ix_console_invitations_username"), table_name="console_invitations")
    op.drop_table("console_invitations")
    op.drop_table("console_policies")
    op.drop_index(op.f("ix_console_oidc_logins_expires_at"), table_name="console_oidc_logins")
    op.drop_table("console_oidc_logins")
