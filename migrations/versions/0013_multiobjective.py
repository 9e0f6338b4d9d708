"""trials.objectives, constraint_values, feasible, violation: several objectives and constraints

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 04:10:00

A study with `metrics` (several objectives) or `constraints` keeps them in its document (studies.config,
as submitted), which never changes: no study column. Each trial of such a study gets, when it ends
with values (completed or pruned), its objective vector as reported (`objectives`, a JSON list in the
order of the study's objectives, each in its own goal's direction), each constraint's value in
"<= 0 holds" form (`constraint_values`, a JSON list, null for a metric not reported), `feasible` and
`violation` (the sum of the positive constraint values; null when a constrained metric is missing).
These are computed once, from the final report (service/domain/core/objectives.py), so the engines,
the front and the exports read them back instead of re-reading reports. Plain nullable columns: an
ALTER TABLE ADD COLUMN on both backends; older rows and single-objective studies keep NULL.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('objectives', _json(), nullable=True))
        batch.add_column(sa.Column('constraint_values', _json(), nullable=True))
        batch.add_column(sa.Column('feasible', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('violation', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.drop_column('violation')
        batch.drop_column('feasible')
        batch.drop_column('constraint_values')
        batch.drop_column('objectives')
