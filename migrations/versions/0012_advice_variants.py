"""trials.parent_trial_id, trials.advice_notch: a trial enqueued from another trial's diagnosis

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 03:00:00

`POST /trials/{id}/try-advice` enqueues the variant a trial's diagnosis proposes (its params with one
notch changed) into the same study. The new trial records its parent (`parent_trial_id`, the
diagnosed trial's id) and the notch it applied (`advice_notch`, e.g. lr_down; set only for such
trials), so the study read can say how often the advice helped. Its method stays 'enqueued', so
the CHECK constraint of trials.method (migration 0010) is unchanged and no table is rebuilt. No
foreign key: both rows belong to the same study and go with it; a plain nullable column is an
ALTER TABLE ADD COLUMN on both backends. Older rows keep NULL.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('parent_trial_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('advice_notch', sa.String(length=32), nullable=True))
    # Every study read counts its advice variants: found by this index, not by reading the study's rows.
    op.create_index('ix_trials_parent', 'trials', ['parent_trial_id'])


def downgrade() -> None:
    op.drop_index('ix_trials_parent', table_name='trials')
    with op.batch_alter_table('trials') as batch:
        batch.drop_column('advice_notch')
        batch.drop_column('parent_trial_id')
