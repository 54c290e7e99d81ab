"""indexes for the searches on 45 days of data: trigram indexes for the substring filters, tag order

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08 02:00:00.000000

The message and bounce searches filter by substring, case-insensitively (Postmark's `recipient`,
`subject` and `emailFilter`): `x ILIKE '%…%'` (SQLAlchemy's `icontains`), which no B-tree serves, so each was a scan of
the server's every message (8.6 s for a recipient on 2M messages). pg_trgm's GIN operator class
serves exactly that predicate, so the answers stay the same. The recipients are one text array;
the search matches the array joined with commas, and `array_to_string` is only STABLE (it calls the
element type's output function), so it is wrapped in an IMMUTABLE SQL function for text[] to be
indexable. `(server_id, tag, created_at)` serves a tag search newest first without walking past
the other tags' messages.

The indexes are built CONCURRENTLY: on a large database a plain CREATE INDEX would hold off every
accepted message for the minutes the build takes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_messages_recipients_trgm": "messages USING gin (recipients_search_text(recipients) gin_trgm_ops)",
    "ix_messages_subject_trgm": "messages USING gin (subject gin_trgm_ops)",
    "ix_messages_server_id_tag_created_at": "messages (server_id, tag, created_at)",
    "ix_bounces_email_trgm": "bounces USING gin (email gin_trgm_ops)",
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE OR REPLACE FUNCTION recipients_search_text(text[]) RETURNS text"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ SELECT array_to_string($1, ',') $$"
    )
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            _create_index_concurrently(name, definition)


def _create_index_concurrently(name: str, definition: str) -> None:
    # An INVALID leftover of an interrupted build would satisfy IF NOT EXISTS, so it is dropped
    # first and a re-run finishes the job (as in 0008).
    invalid = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :name AND NOT i.indisvalid"),
        {"name": name},
    )
    if invalid.first() is not None:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute("DROP FUNCTION IF EXISTS recipients_search_text(text[])")
    # pg_trgm stays: another schema object of the database may use it.
