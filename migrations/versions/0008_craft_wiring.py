"""craft wiring: a study's repeat requests and why its next stage could not start

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 12:00:00

Shipped as revision 0009 (there was never a 0008); renumbered so the revisions run without a gap.
A database stamped with the old id is restamped before upgrading (db/migrate.py, legacy_stamp).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
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
