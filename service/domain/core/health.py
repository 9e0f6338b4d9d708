"""Whether this replica can run a query on its database (GET /readyz)."""
from __future__ import annotations

from tuneserve_service.db.engine import Database
from tuneserve_service.store import health as health_store


def check_database(db: Database) -> None:
    """Run one query; raises whatever the driver raises when the database does not answer."""
    with db.transaction() as session:  # SQLite: queued like any other transaction of this process
        health_store.ping(session)
