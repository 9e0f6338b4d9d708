"""gates: which special run (the sanity check, the lr range test) holds a study's ordinary trials back

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:30:00

Shipped as revision 0010; renumbered with 0008 (see there).

studies.gate: NULL when the study hands out ordinary trials; 'sanity' or 'lr_range' while that special
run (a trial of the same kind, numbered below zero) is pending or running. The claim statements read
it in SQL, so no ordinary trial is handed out while it is set (service/domain/gates.py).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable), never a batch rebuild: see 0007.
    op.add_column('studies', sa.Column('gate', sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column('studies', 'gate')
