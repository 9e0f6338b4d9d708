"""The schema comes only from Alembic: the migrated database must match the models exactly."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tuneserve_service.db.models import Base


def test_migrations_match_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"models and migrations drifted; add a migration: {diff}"
    assert {"studies", "trials", "trial_reports", "alembic_version"} <= tables


def test_upgrade_is_idempotent(database_url):
    from tuneserve_service.db.migrate import upgrade

    upgrade(database_url)  # already at head: a no-op, not an error
