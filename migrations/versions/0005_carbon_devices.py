"""Devices carry their carbon's sources: a grid zone, the hardware Boavizta models them as,
the declared figures beside the derived ones, and the provenance of embodied carbon and
power (issue 14).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FLOATS = (
    "embodied_declared_kgco2e",
    "lifetime_declared_h",
    "grid_declared_gco2_per_kwh",
    "embodied_derived_kgco2e",
    "lifetime_derived_h",
    "grid_derived_gco2_per_kwh",
)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("zone", sa.String(64), nullable=True))
        batch.add_column(sa.Column("carbon_spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("inventory", sa.JSON(), nullable=True))
        for name in _FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(
            sa.Column(
                "embodied_provenance", sa.String(512), nullable=False, server_default="declared"
            )
        )
    # power_provenance (where `profile` is one value) is 0004's column.
    # Figures typed in before this migration were declared ones.
    op.execute(
        "UPDATE devices SET embodied_declared_kgco2e = embodied_kgco2e, "
        "lifetime_declared_h = lifetime_h, grid_declared_gco2_per_kwh = grid_gco2_per_kwh"
    )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        for name in ("embodied_provenance", *reversed(_FLOATS)):
            batch.drop_column(name)
        batch.drop_column("inventory")
        batch.drop_column("carbon_spec")
        batch.drop_column("zone")
