"""enum checks: the database refuses a state, kind, method, goal, fail kind, gate or role outside its list

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 01:30:00

One named CHECK constraint per enum-typed column (service/db/models.py, ENUM_CHECKS), with the values
of tuneserve.schemas.enums as they are today, written out here: a migration records the schema of its
day, so a value added to an enum later comes with a migration that replaces that column's constraint.

Rows already stored must pass. Before adding anything the upgrade looks for values outside the lists
and, if it finds any, stops with a message naming the table, the column and the values (nothing is
changed; fix or delete those rows, then upgrade again) instead of failing half-way on a constraint.

SQLite cannot add a CHECK to a table, so `studies`, `trials` and `api_tokens` are rebuilt (batch mode).
A rebuild drops the old table, which would cascade to every trial or report while foreign keys are
enforced: migrations/env.py turns enforcement off around the migrations on SQLite (and checks the
foreign keys before turning it on again), which is SQLite's own procedure for such changes.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_METHODS = ['random', 'grid', 'tpe', 'tpe_hyperopt', 'gp']

CHECKS: dict[str, dict[str, tuple[str, list[str]]]] = {
    'studies': {
        'goal': ('ck_studies_goal', ['minimize', 'maximize']),
        'method': ('ck_studies_method', _METHODS),
        'state': ('ck_studies_state', ['running', 'paused', 'stopped', 'finished']),
        'gate': ('ck_studies_gate', ['sanity', 'lr_range']),
    },
    'trials': {
        'state': ('ck_trials_state', ['waiting', 'running', 'completed', 'pruned', 'failed', 'diverged']),
        'method': ('ck_trials_method', _METHODS + ['enqueued', 'repeat', 'sanity', 'lr_range']),
        'kind': ('ck_trials_kind', ['trial', 'sanity', 'lr_range']),
        'fail_kind': ('ck_trials_fail_kind', ['error', 'diverged', 'oom', 'timeout', 'killed', 'invalid_params',
                                              'lease_expired', 'other']),
    },
    'api_tokens': {
        'role': ('ck_api_tokens_role', ['admin', 'worker']),
    },
}


def _condition(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _refuse_invalid_rows() -> None:
    bind = op.get_bind()
    bad = []
    for table, columns in CHECKS.items():
        for column, (_, values) in columns.items():
            found = bind.execute(sa.text(
                f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL AND NOT ({_condition(column, values)})"
            )).scalars().all()
            if found:
                bad.append(f"{table}.{column} holds {sorted(map(str, found))}, allowed: {values}")
    if bad:
        raise RuntimeError("migration 0010 adds CHECK constraints that stored rows break; fix or delete those "
                           "rows, then upgrade again: " + "; ".join(bad))


def upgrade() -> None:
    _refuse_invalid_rows()
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, columns in CHECKS.items():
        if sqlite:
            # api_tokens keeps AUTOINCREMENT (ids never reused: see models.ApiToken).
            kwargs = {'sqlite_autoincrement': True} if table == 'api_tokens' else {}
            with op.batch_alter_table(table, recreate='always', table_kwargs=kwargs) as batch:
                for column, (name, values) in columns.items():
                    batch.create_check_constraint(name, _condition(column, values))
        else:
            for column, (name, values) in columns.items():
                op.create_check_constraint(name, table, _condition(column, values))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table, columns in CHECKS.items():
        if sqlite:
            kwargs = {'sqlite_autoincrement': True} if table == 'api_tokens' else {}
            with op.batch_alter_table(table, recreate='always', table_kwargs=kwargs) as batch:
                for column, (name, _) in columns.items():
                    batch.drop_constraint(name, type_='check')
        else:
            for column, (name, _) in columns.items():
                op.drop_constraint(name, table, type_='check')
