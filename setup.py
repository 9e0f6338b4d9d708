"""Packaging that pyproject.toml cannot say.

The repository keeps its folders `service/` and `workers/`, but they install as `tuneserve_service` and
`tuneserve_workers`: top-level names that cannot shadow (or be shadowed by) a user's own `service` or
`workers` module in a training environment. The client is `tuneserve/` as it is. The Alembic folder
`migrations/` stays at the top of the repository (where `alembic` and the tests expect it) and ships
inside the wheel as `tuneserve_service/db/migrations`, so an installed server can migrate its database
(tuneserve_service/db/migrate.py looks there first). Everything else is in pyproject.toml."""
from setuptools import find_namespace_packages, setup


def mapped(folder: str, name: str) -> list[str]:
    """The packages under `folder`, named as they install (`service.api` -> `tuneserve_service.api`)."""
    return [name] + [f"{name}.{sub}" for sub in find_namespace_packages(where=folder)]


setup(
    packages=find_namespace_packages(include=["tuneserve", "tuneserve.*"])
    + mapped("service", "tuneserve_service") + mapped("workers", "tuneserve_workers")
    + ["tuneserve_service.db.migrations", "tuneserve_service.db.migrations.versions"],
    package_dir={"tuneserve_service": "service", "tuneserve_workers": "workers",
                 "tuneserve_service.db.migrations": "migrations"},
)
