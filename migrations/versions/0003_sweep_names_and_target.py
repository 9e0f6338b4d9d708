"""W&B sweep documents: a display name beside the URL name, and metric.target

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00

- studies.display_name: the document's `name` as written (any text); `name` stays the unique URL
  name (the slug). Existing studies get display_name = name.
- studies.metric_target: W&B's metric.target (a completed trial at or beyond it finishes the study).
- studies.target_reached_by: the number of the trial that reached it.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('metric_target', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('target_reached_by', sa.Integer(), nullable=True))
    op.execute("UPDATE studies SET display_name = name WHERE display_name IS NULL")
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.alter_column('display_name', existing_type=sa.String(length=500), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('target_reached_by')
        batch_op.drop_column('metric_target')
        batch_op.drop_column('display_name')
