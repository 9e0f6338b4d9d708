"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from tuneserve_service.config import Settings
from tuneserve_service.db.engine import Database
from tuneserve_service.db.migrate import upgrade
from tuneserve_service.main import create_app
from tests.support.databases import BACKENDS, create_pg_database, drop_pg_database, truncate_all
from tests.support.live_server import LiveServer


@pytest.fixture(scope="session")
def pg_session_url():
    url = create_pg_database()
    upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One SQLite file migrated once per test process; each test gets a copy (a copy takes a
    millisecond, the migrations a third of a second). tests/test_migrations.py runs them for real."""
    path = tmp_path_factory.mktemp("template") / "tuneserve.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "tuneserve.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_session_url")
        truncate_all(url)
        yield url


@pytest.fixture
def db(database_url):
    database = Database(database_url, pool_size=4)
    yield database
    database.dispose()


@pytest.fixture
def client(database_url):
    """The app in-process (fast API tests); end-to-end tests use `live_server`."""
    app = create_app(Settings(database_url=database_url, reaper_interval=0.2))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def live_server(database_url, tmp_path):
    server = LiveServer(database_url, log_path=tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def one_torch_thread():
    """Training on one thread: the CI box has 2 cores shared with a server in other tests, and one
    thread is steadier. Test modules that train use it with `pytestmark = pytest.mark.usefixtures(...)`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a browser test module (tests/support/browser.py finds it; a module skips
    itself when it is missing)."""
    from tests.support.browser import chromium

    with chromium() as driver:
        yield driver


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.one_backend("sqlite")` on a long end-to-end test (a real worker, a second server
    process): the default run keeps that backend's variant and marks the other one `slow`, so the
    suite stays bounded while `pytest -m slow` still runs every variant. What such a test checks lives
    in the worker or the fault path, not in the backend's SQL, which the API tests cover on both."""
    for item in items:
        marker = item.get_closest_marker("one_backend")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        backend = callspec.params.get("database_url", callspec.params.get("backend"))
        if backend is not None and backend != marker.args[0]:
            item.add_marker(pytest.mark.slow)
