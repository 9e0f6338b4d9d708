"""method 'botorch': the CHECK constraints of studies.method and trials.method allow the new engine

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 04:10:00

The botorch engine (service/optimizers/botorch_engine.py, server extra [botorch]) is a new value of
Method, so the two method constraints of migration 0010 are replaced by ones that list it (written
out here: a migration records the schema of its day). SQLite cannot alter a CHECK, so `studies` and
`trials` are rebuilt in batch mode, as in 0010 (migrations/env.py turns foreign keys off around it).

The downgrade cannot put a 'botorch' row under the old constraint: it stops, naming the tables and
how many rows, before changing anything (move those studies to another method or delete them).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_OLD = ['random', 'grid', 'tpe', 'tpe_hyperopt', 'gp']
_NEW = _OLD + ['botorch']
_SOURCES = ['enqueued', 'repeat', 'sanity', 'lr_range']

CHECKS = {
    'studies': ('ck_studies_method', _OLD, _NEW),
    'trials': ('ck_trials_method', _OLD + _SOURCES, _NEW + _SOURCES),
}


def _condition(values: list[str]) -> str:
    return f"method IN ({', '.join(repr(v) for v in values)})"


def _replace(which: int) -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, (name, *lists) in CHECKS.items():
        if sqlite:
            with op.batch_alter_table(table, recreate='always') as batch:
                batch.drop_constraint(name, type_='check')
                batch.create_check_constraint(name, _condition(lists[which]))
        else:
            op.drop_constraint(name, table, type_='check')
            op.create_check_constraint(name, table, _condition(lists[which]))


def upgrade() -> None:
    _replace(1)


def downgrade() -> None:
    bind = op.get_bind()
    found = {table: bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE method = 'botorch'")).scalar_one()
             for table in CHECKS}
    if any(found.values()):
        raise RuntimeError("cannot downgrade below 0013: method 'botorch' is stored in "
                           + ", ".join(f"{n} {t} rows" for t, n in found.items() if n)
                           + "; move those studies to another method or delete them, then downgrade again")
    _replace(0)
