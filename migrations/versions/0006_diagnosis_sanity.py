"""diagnosis and the sanity gate: studies.sanity, trials.diagnosis, trials.kind

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00

- studies.sanity: the gate's state, config, figures and verdict (SanityResult.to_json() plus the
  `config` it ran with); NULL when the study never asked for one.
- trials.diagnosis: Diagnosis.to_json(), computed when the trial ends; NULL before.
- trials.kind: 'trial' for ordinary trials, 'sanity' for the gate's run (other special runs, such as
  an LR range test, can share the column); existing rows become 'trial'.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sanity', JSON, nullable=True))
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='trial', nullable=False))
        batch_op.add_column(sa.Column('diagnosis', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_column('diagnosis')
        batch_op.drop_column('kind')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('sanity')
