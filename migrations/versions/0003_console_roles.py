"""Operator keys carry a role: viewer (reads only), operator (reads and fleet writes) or
admin (also manages operator keys). Keys made before roles existed could do everything,
so they become admin; new keys default to operator.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="operator")
        )
    op.execute("UPDATE api_keys SET role = 'admin'")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
