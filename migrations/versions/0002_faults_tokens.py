"""reservations as rows (trials.drawn), leases bound to a token (trials.holder), runs of a trial
and of its reports (trials.runs, trial_reports.run), api_tokens

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holder', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('drawn', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('runs', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('trial_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run', sa.Integer(), server_default='0', nullable=False))
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('token_hash'),
    sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table('api_tokens')
    with op.batch_alter_table('trial_reports', schema=None) as batch_op:
        batch_op.drop_column('run')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_column('runs')
        batch_op.drop_column('drawn')
        batch_op.drop_column('holder')
