"""Devices record where their power figures come from (issue 17): `power_provenance`,
one of declared | measured | fitted | profile, the last one a heartbeat reported.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_column() -> bool:
    # The hardware-profile feature (issue 14) adds the same shared column: whichever
    # migration runs first adds it, the other finds it there.
    columns = sa.inspect(op.get_bind()).get_columns("devices")
    return any(c["name"] == "power_provenance" for c in columns)


def upgrade() -> None:
    if _has_column():
        return
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column(
                "power_provenance", sa.String(length=16), nullable=False,
                server_default="declared",
            )
        )  # fmt: skip


def downgrade() -> None:
    if not _has_column():
        return
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("power_provenance")
