"""dashboard and metrics: the step at which the pruner stopped a trial; indexes for recent endings
and for the dashboard's per-study scans

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_step', sa.Integer(), nullable=True))
        batch_op.create_index('ix_trials_finished_at', ['finished_at'], unique=False)
        batch_op.create_index('ix_trials_study_points',
                              ['study_id', 'number', 'state', 'value', 'last_step', 'finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_study_points')
        batch_op.drop_index('ix_trials_finished_at')
        batch_op.drop_column('stop_step')
