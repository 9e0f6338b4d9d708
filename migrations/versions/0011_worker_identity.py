"""workers.identity: where a worker runs (host, Slurm job, Kubernetes pod, GPU), for the trial page

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 01:30:00

A nullable TEXT column holding tuneserve.schemas.workers.WorkerIdentity as JSON, written by
PUT /api/v1/workers/{worker_id} when a worker starts. TEXT rather than JSON: PostgreSQL's json type
has no equality, and the value is only ever read whole. Rows of older workers keep NULL.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('identity', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('identity')
