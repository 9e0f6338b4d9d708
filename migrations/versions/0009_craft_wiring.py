"""craft wiring: a study's repeat requests and why its next stage could not start

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-28 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    # Plain ADD COLUMN (nullable), never a batch rebuild: see 0007.
    op.add_column('studies', sa.Column('repeats', JSONType, nullable=True))
    op.add_column('studies', sa.Column('stage_note', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('studies', 'stage_note')
    op.drop_column('studies', 'repeats')
