"""The console (issue 13): roles on operator keys, and the charts' samples.

Operator keys carry a role: viewer (reads only), operator (reads and fleet writes) or
admin (also manages operator keys). Keys made before roles existed could do everything,
so they become admin; new keys default to operator. `console_samples` holds the charts'
bounded, downsampled time series (orchestrator/samples.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="operator")
        )
    op.execute("UPDATE api_keys SET role = 'admin'")
    op.create_table(
        "console_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_samples_at", "console_samples", ["at"])


def downgrade() -> None:
    op.drop_index("ix_console_samples_at", table_name="console_samples")
    op.drop_table("console_samples")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
