"""The domain: the study core (core/) and the features plugged into it (features/).

Layers, checked by import-linter (pyproject.toml): `main`/`cli` above `api`/`dashboard` above
`domain` above `store` above `db`. The core imports no feature; a feature imports the core and no
other feature; the core calls the features through the hook list (core/hooks.py), which this
package fills with features.FEATURES when it is first imported, so whoever uses the domain gets the
features in force.

Transactions are opened in this layer, and only here, by `Database.transaction()`: a route calls
one domain function with the `Database` and that function opens the transaction(s) it needs. Why
not one transaction per request at the route: the worker protocol needs several short ones per
request (read history, compute a suggestion with no transaction open, write it: DESIGN.md habit 2;
the claim of a next trial in the transaction that completed the last), so only the domain knows
where a transaction may end. Functions that take a `Session` are the domain's building blocks and
run inside a transaction a caller opened; store functions flush and never commit.
"""
from tuneserve_service.domain.core import hooks as _hooks
from tuneserve_service.domain.features import FEATURES as _FEATURES

_hooks.install(_FEATURES)
