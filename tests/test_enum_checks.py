"""The enum-typed columns are checked by the database (migration 0010), valid rows survive that
migration on both backends, and a database stamped before the renumbering (0009 -> 0008,
0010 -> 0009) upgrades as if it had never been renumbered."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from tuneserve.schemas.enums import FailKind, Gate, Goal, Method, Role, StudyState, TrialKind, TrialSource, TrialState
from tuneserve_service.db.migrate import alembic_config, upgrade
from tuneserve_service.db.models import ENUM_CHECKS, ApiToken, Study, Trial, TrialLog, TrialReport
from tests.support.databases import BACKENDS, create_pg_database, drop_pg_database


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """An empty database that no migration has touched."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = create_pg_database()
        yield url
        drop_pg_database(url)


def _head() -> str:
    """The newest revision (later migrations add to the head these tests upgrade to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _version(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return found


def _stamp(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def _checks(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = {c["name"] for table in ("studies", "trials", "api_tokens")
                 for c in inspect(conn).get_check_constraints(table)}
    engine.dispose()
    return names


# Values added by a migration after 0010 (0015: botorch): a database at 0009-0014 cannot hold them.
_AFTER_0010 = {Method.BOTORCH}


def _fill(url: str, old: bool = False) -> None:
    """One row per value of every checked column (what a database of the old schema may hold:
    with `old`, only the values that migration 0010 lists)."""
    engine = create_engine(url)
    now = datetime.now(timezone.utc)
    with Session(engine) as s:
        studies = []
        for i, state in enumerate(StudyState):
            study = Study(name=f"s{i}", display_name=f"s{i}", metric_name="loss", goal=list(Goal)[i % 2],
                          method=list(Method)[i % len(Method)], space=[], pruner={}, config={}, seed=0,
                          lease_seconds=60.0, max_retries=1, state=state, gate=[None, *Gate][i % 3])
            s.add(study)
            studies.append(study)
        s.flush()
        methods = [m for m in [*Method, *TrialSource] if not (old and m in _AFTER_0010)]
        fails = [None, *FailKind]
        # Trials through the table as the database has it: the model may have columns a later
        # migration adds (an ORM insert names them all).
        trials = Table("trials", MetaData(), autoload_with=s.connection())
        for n in range(max(len(methods), len(fails), len(TrialState) * len(TrialKind))):
            trial_id = s.execute(insert(trials).values(
                study_id=studies[n % len(studies)].id, number=n, state=list(TrialState)[n % len(TrialState)].value,
                params={"x": n}, method=str(methods[n % len(methods)]), kind=list(TrialKind)[n % len(TrialKind)].value,
                fail_kind=None if fails[n % len(fails)] is None else fails[n % len(fails)].value, metrics={},
                attempt=0, runs=0, drawn=True, created_at=now).returning(trials.c.id)).scalar_one()
            s.add(TrialReport(trial_id=trial_id, step=0, value=1.0, metrics={"loss": 1.0}, created_at=now))
            s.add(TrialLog(trial_id=trial_id, attempt=0, text="log", size=3, updated_at=now))
        for role in Role:
            s.add(ApiToken(name=f"t-{role}", role=role, token_hash=f"{role}".ljust(64, "0")))
        s.commit()
    engine.dispose()


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
               for t in ("studies", "trials", "trial_reports", "trial_logs", "api_tokens")}
    engine.dispose()
    return out


def test_the_database_refuses_a_value_outside_each_enum(database_url):
    _fill(database_url)
    engine = create_engine(database_url)
    try:
        for (table, column), (name, values, _) in ENUM_CHECKS.items():
            with engine.connect() as conn:
                with pytest.raises(IntegrityError) as err:
                    conn.execute(text(f"UPDATE {table} SET {column} = 'bogus'"))
                assert name in str(err.value) or "CHECK" in str(err.value).upper(), str(err.value)
                conn.rollback()
                # Every listed value is accepted (NULL too where the column allows it).
                for value in values:
                    conn.execute(text(f"UPDATE {table} SET {column} = :v"), {"v": value})
                conn.rollback()
        with engine.connect() as conn, pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO api_tokens (name, role, token_hash, created_at) "
                              "VALUES ('x', 'root', :h, CURRENT_TIMESTAMP)"), {"h": "f" * 64})
    finally:
        engine.dispose()


def test_the_orm_reads_members_and_refuses_unknown_strings(database_url):
    _fill(database_url)
    engine = create_engine(database_url)
    try:
        with Session(engine) as s:
            trial = s.query(Trial).order_by(Trial.id).first()
            assert isinstance(trial.state, TrialState) and trial.state == "waiting"
            trial.state = "nonsense"
            with pytest.raises(StatementError):
                s.flush()
    finally:
        engine.dispose()


def test_valid_rows_survive_the_checks_migration(fresh_url):
    upgrade(fresh_url, "0009")
    _fill(fresh_url, old=True)
    before = _counts(fresh_url)
    upgrade(fresh_url)
    assert _version(fresh_url) == _head()
    # No rebuild cascaded: every trial, report and log is still there.
    assert _counts(fresh_url) == before and before["trial_reports"] > 0
    assert {name for name, _, _ in ENUM_CHECKS.values()} <= _checks(fresh_url)


def test_stored_rows_that_break_a_check_stop_the_migration_with_a_clear_message(fresh_url):
    upgrade(fresh_url, "0009")
    _fill(fresh_url, old=True)
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE trials SET fail_kind = 'cosmic_ray' WHERE id = 1"))
    engine.dispose()
    with pytest.raises(RuntimeError, match=r"trials\.fail_kind holds \['cosmic_ray'\]"):
        upgrade(fresh_url)
    assert _version(fresh_url) == "0009"


def test_a_database_stamped_with_the_old_0009_upgrades(fresh_url):
    upgrade(fresh_url, "0008")   # craft wiring, shipped as "0009"
    _stamp(fresh_url, "0009")
    upgrade(fresh_url)
    assert _version(fresh_url) == _head()
    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        assert "gate" in {c["name"] for c in inspect(conn).get_columns("studies")}
    engine.dispose()
    assert "ck_trials_state" in _checks(fresh_url)


def test_a_database_stamped_with_the_old_0010_upgrades(fresh_url):
    upgrade(fresh_url, "0009")   # gates, shipped as "0010"
    _fill(fresh_url, old=True)
    _stamp(fresh_url, "0010")
    upgrade(fresh_url)
    assert _version(fresh_url) == _head()
    assert "ck_trials_state" in _checks(fresh_url)
    upgrade(fresh_url)   # at head under the new numbering: nothing is restamped
    assert _version(fresh_url) == _head()


def test_downgrade_drops_the_checks(fresh_url):
    from alembic import command

    from tuneserve_service.db.migrate import alembic_config

    upgrade(fresh_url)
    _fill(fresh_url, old=True)
    command.downgrade(alembic_config(fresh_url), "0009")
    assert not ({name for name, _, _ in ENUM_CHECKS.values()} & _checks(fresh_url))
    assert _counts(fresh_url)["trial_reports"] > 0
    upgrade(fresh_url)
    assert _version(fresh_url) == _head()


def test_downgrade_below_0015_refuses_botorch_rows_and_changes_nothing(fresh_url):
    from alembic import command

    from tuneserve_service.db.migrate import alembic_config

    upgrade(fresh_url)
    _fill(fresh_url)   # a botorch trial among them
    with pytest.raises(RuntimeError, match=r"method 'botorch' is stored in .*trials rows"):
        command.downgrade(alembic_config(fresh_url), "0014")
    assert _version(fresh_url) == _head()
