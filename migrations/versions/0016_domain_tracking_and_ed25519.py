"""a sending domain's own tracking host

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-08 02:00:00.000000

`tracking_domain` (a CNAME of the tracking host, verified like the return path) is the host of the
open and click URLs in the domain's mail once `tracking_verified`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("domains", sa.Column("tracking_domain", sa.String(length=255), nullable=False, server_default=""))
    op.add_column("domains", sa.Column("tracking_verified", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("domains", "tracking_verified")
    op.drop_column("domains", "tracking_domain")
