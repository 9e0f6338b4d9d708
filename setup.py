"""Packaging that pyproject.toml cannot say: the Alembic folder `migrations/` stays at the top of the
repository (where `alembic` and the tests expect it) and ships inside the wheel as
`service/db/migrations`, so an installed tuneserve can migrate its database (service/db/migrate.py
looks there first). Everything else about the package is in pyproject.toml."""
from setuptools import find_namespace_packages, setup

setup(
    # Namespace discovery, as pyproject's packages.find does by default: a folder of modules or assets
    # is shipped even without an __init__.py.
    packages=find_namespace_packages(include=["service", "service.*", "workers", "workers.*", "tuneserve",
                                              "tuneserve.*"])
    + ["service.db.migrations", "service.db.migrations.versions"],
    package_dir={"service.db.migrations": "migrations"},
)
