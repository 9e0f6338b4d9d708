"""trial_provenance: what each trial's latest attempt was, to rerun it exactly

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 04:20:00

The worker sends a trial's provenance (params as run, seed, data subset, python/torch/CUDA/cuDNN/
tuneserve versions, the program's command line, a git commit with a dirty flag or a sha256 of the
code) with an attempt's first report; the server keeps the latest attempt's. A table of its own,
one row per trial, rather than a column of trials: the worker protocol reads and RETURNs whole
trial rows on every call, and a kilobyte of JSON more on each would be paid for nothing. Deleted
with its trial (ON DELETE CASCADE, as trial_logs). A rerun (POST /trials/{id}/rerun) records the
trial it reruns in trials.parent_trial_id with advice_notch 'rerun' (migration 0012's columns).

Follows 0013 (several objectives).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trial_provenance',
        sa.Column('trial_id', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('provenance', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('trial_id'),
    )


def downgrade() -> None:
    op.drop_table('trial_provenance')
