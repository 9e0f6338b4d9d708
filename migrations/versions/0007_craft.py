"""craft: study parent/stage links, fidelity, range test and refine records; trial fidelity and config key

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch rebuild: the server's SQLite connections enforce foreign keys,
    # and rebuilding `studies` or `trials` drops the old table, which cascades to every trial or report.
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite takes a REFERENCES clause in ADD COLUMN (a nullable column), but Alembic only
        # adds constraints there through a batch rebuild.
        op.execute('ALTER TABLE studies ADD COLUMN parent_id INTEGER '
                   'CONSTRAINT fk_studies_parent_id REFERENCES studies (id)')
    else:
        op.add_column('studies', sa.Column('parent_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_studies_parent_id', 'studies', 'studies', ['parent_id'], ['id'])
    op.add_column('studies', sa.Column('stage_index', sa.Integer(), nullable=True))
    op.add_column('studies', sa.Column('fidelity', JSONType, nullable=True))
    op.add_column('studies', sa.Column('lr_range', JSONType, nullable=True))
    op.add_column('studies', sa.Column('refine', JSONType, nullable=True))
    op.create_index('uq_studies_parent_stage', 'studies', ['parent_id', 'stage_index'], unique=True)
    op.add_column('trials', sa.Column('fidelity', JSONType, nullable=True))
    op.add_column('trials', sa.Column('config_key', sa.String(length=32), nullable=True))
    op.create_index('ix_trials_study_config', 'trials', ['study_id', 'config_key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_trials_study_config', table_name='trials')
    op.drop_column('trials', 'config_key')
    op.drop_column('trials', 'fidelity')
    op.drop_index('uq_studies_parent_stage', table_name='studies')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('fk_studies_parent_id', 'studies', type_='foreignkey')
    for column in ('refine', 'lr_range', 'fidelity', 'stage_index'):
        op.drop_column('studies', column)
    if op.get_bind().dialect.name == 'sqlite':
        # Once a later rebuild (0010) has turned the column's REFERENCES into a table constraint,
        # SQLite refuses a plain DROP COLUMN: rebuild (env.py turns foreign keys off around it).
        with op.batch_alter_table('studies', recreate='always') as batch:
            batch.drop_column('parent_id')
    else:
        op.drop_column('studies', 'parent_id')
